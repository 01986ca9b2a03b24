"""The loss a user's vector is solved for, in one place: how an interaction value r becomes
confidence and preference, and how strongly the vector is pulled towards zero.

A user's vector x minimises, with the item factors Y fixed,

    sum_i c_i (p_i - x.y_i)^2 + reg |x|^2        (items not interacted with: c = 1, p = 0)

whose normal equations are (YtY + reg I + sum_i (c_i - 1) y_i y_i^T) x = sum_i c_i p_i y_i.
An objective turns the user's values r_i into the three things those equations need:
the weight of y_i y_i^T in the matrix (c_i - 1), the weight of y_i on the right (c_i p_i),
and reg. Training and every serving-time solve read them from here, so they cannot differ.

`implicit` (the library this project trains with, 0.7.x): c = alpha * r, and a negative r
means preference 0 with confidence alpha * |r|; reg is a constant. A value of exactly 0
therefore gives confidence 0: the item counts less than one never touched (implicit does the
same with an explicit zero in its matrix).

`spark` (Spark MLlib's ALS with implicitPrefs, ALS.scala `computeFactors`): c = 1 + alpha * |r|,
preference 1 for r > 0 and 0 otherwise, and reg is lambda times the user's count of positive
values ("ALS-WR": Spark scales the penalty by each user's and item's number of positive ratings).
So c - 1 = alpha * |r| and the right-hand side weight is 1 + alpha * r for a positive r.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Confidence forms this sidecar can solve. Each names the library whose solve it reproduces.
IMPLICIT = "implicit"
SPARK = "spark"
FORMS = (IMPLICIT, SPARK)


@dataclass(frozen=True)
class Terms:
    """One user's contribution to the normal equations, per item of the user's history."""

    gram: np.ndarray  # float64, weight of y_i y_i^T added to YtY (c_i - 1)
    rhs: np.ndarray  # float64, weight of y_i on the right-hand side (c_i p_i)
    regularization: float


@dataclass(frozen=True)
class Objective:
    form: str = IMPLICIT
    alpha: float = 1.0
    regularization: float = 0.1

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise ValueError(f"unknown objective form {self.form!r} (known: {', '.join(FORMS)})")

    def terms(self, values: np.ndarray) -> Terms:
        """`values` are the user's summed interaction values r_i (type weight x event weight)."""
        r = np.asarray(values, dtype=np.float64)
        c1 = self.alpha * np.abs(r)
        if self.form == SPARK:
            positives = int(np.count_nonzero(r > 0))
            return Terms(gram=c1, rhs=np.where(r > 0, 1.0 + c1, 0.0),
                         regularization=self.regularization * positives)
        return Terms(gram=c1 - 1.0, rhs=np.where(r > 0, c1, 0.0), regularization=self.regularization)

    def regularizations(self, values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """`terms(...).regularization` of each of several users at once, whose values are laid
        end to end (`lengths[i]` values each): the same numbers, without a call per user."""
        n = len(lengths)
        if self.form == SPARK:
            owner = np.repeat(np.arange(n), lengths)
            positives = np.bincount(owner, weights=(np.asarray(values) > 0).astype(np.float64),
                                    minlength=n)
            return self.regularization * positives
        return np.full(n, self.regularization)

    def as_json(self) -> dict[str, str | float]:
        return {"form": self.form, "alpha": self.alpha, "regularization": self.regularization}
