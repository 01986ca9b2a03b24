"""How a shadow arm's ranking compares with the served one: overlap of the two top-n lists,
and the rank correlation of the items both lists hold."""

from __future__ import annotations

from collections.abc import Sequence


def overlap(served: Sequence[str], shadow: Sequence[str]) -> float:
    """|served ∩ shadow| / |served| (1.0 when both are empty)."""
    if not served:
        return 1.0 if not shadow else 0.0
    return len(set(served) & set(shadow)) / len(served)


def rank_correlation(served: Sequence[str], shadow: Sequence[str]) -> float | None:
    """Spearman's rho over the items in both lists, by their positions in each; None when
    fewer than two items are shared (no order to compare)."""
    where = {item: i for i, item in enumerate(shadow)}
    pairs = [(i, where[item]) for i, item in enumerate(served) if item in where]
    n = len(pairs)
    if n < 2:
        return None
    # Ranks within the shared items, so both sides are permutations of 0..n-1.
    a = {p: r for r, p in enumerate(sorted(i for i, _ in pairs))}
    b = {p: r for r, p in enumerate(sorted(j for _, j in pairs))}
    d2 = sum((a[i] - b[j]) ** 2 for i, j in pairs)
    return 1.0 - 6.0 * d2 / (n * (n * n - 1))
