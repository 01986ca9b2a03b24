"""LibRecommender's raw ids (ints, floats holding ints, or strings) as our string ids."""

from __future__ import annotations

import numpy as np

from reco_sidecar.librecommender.errors import ImportRefused


def _one(value: object, where: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        raise ImportRefused(where, f"id {value!r} is a boolean")
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating) and float(value).is_integer():
        # pandas turns integer ids into floats when a column also holds labels (N x 3 float arrays).
        return str(int(value))
    raise ImportRefused(where, f"id {value!r} of type {type(value).__name__} is not a string or an integer")


def as_strings(values: np.ndarray, where: object) -> list[str]:
    if values.dtype.kind in "iu":
        return [str(v) for v in values.tolist()]
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
            raise ImportRefused(where, "float ids that are not whole numbers")
        return [str(v) for v in values.astype(np.int64).tolist()]
    if values.dtype.kind == "U":
        return [str(v) for v in values.tolist()]
    if values.dtype.kind == "O":
        return [_one(v, where) for v in values.tolist()]
    raise ImportRefused(where, f"ids of dtype {values.dtype} are not supported")


def unique_index(ids: list[str], where: object, what: str) -> dict[str, int]:
    index = {id_: row for row, id_ in enumerate(ids)}
    if len(index) != len(ids):
        raise ImportRefused(where, f"{what} ids are not unique")
    return index
