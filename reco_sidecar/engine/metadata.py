"""Item categories and tags, turned into masks over item rows for filtering."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class ItemCatalog:
    def __init__(self, categories: list[str], tags: list[list[str]]) -> None:
        names = sorted(set(categories))
        self._category_code = {name: code for code, name in enumerate(names)}
        self.codes = np.asarray([self._category_code[c] for c in categories], dtype=np.int32)
        by_tag: dict[str, list[int]] = {}
        for row, item_tags in enumerate(tags):
            for tag in item_tags:
                by_tag.setdefault(tag, []).append(row)
        self._tag_rows = {t: np.asarray(r, dtype=np.int64) for t, r in by_tag.items()}
        self.categories = categories
        self.tags = tags

    def mask(self, categories: Sequence[str], tags: Sequence[str]) -> np.ndarray | None:
        """True for items in any of `categories` and carrying all `tags`; None when unfiltered."""
        if not categories and not tags:
            return None
        n = len(self.codes)
        if categories:
            wanted = [self._category_code[c] for c in categories if c in self._category_code]
            mask = np.isin(self.codes, np.asarray(wanted, dtype=np.int32))
        else:
            mask = np.ones(n, dtype=bool)
        for tag in tags:
            has = np.zeros(n, dtype=bool)
            has[self._tag_rows.get(tag, np.zeros(0, dtype=np.int64))] = True
            mask &= has
        return mask
