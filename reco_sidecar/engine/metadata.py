"""Item categories and tags, turned into masks over item rows for filtering; and the optional
per-item fields (creator, ...) and creation times the ranking stage caps and boosts by."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class ItemCatalog:
    def __init__(self, categories: list[str], tags: list[list[str]], fields: dict[str, list[str]] | None = None,
                 created_at: Sequence[int] | None = None) -> None:
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
        # Each field as integer codes per item row ("" is a value like any other), so a cap per
        # value counts integers. `category` is one of them.
        self.fields: dict[str, list[str]] = {"category": categories, **(fields or {})}
        self._field_codes: dict[str, np.ndarray] = {}
        # Unix seconds per item row, or None when the artifact has no creation times.
        self.created_at = None if created_at is None else np.asarray(created_at, dtype=np.int64)

    def field_codes(self, name: str) -> np.ndarray | None:
        """Integer codes of `name`'s values per item row (equal codes: equal values); None if absent."""
        codes = self._field_codes.get(name)
        if codes is None:
            values = self.fields.get(name)
            if values is None:
                return None
            index: dict[str, int] = {}
            codes = np.fromiter((index.setdefault(v, len(index)) for v in values), dtype=np.int32,
                                count=len(values))
            self._field_codes[name] = codes  # a benign race: two threads build equal arrays
        return codes

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
