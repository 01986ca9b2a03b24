"""The items CSV as the artifact's item metadata: category and tags for filters, and any other
column as a per-item field (creator, ...) the ranking stage can cap by; a `created_at` column
(Unix seconds or an ISO 8601 date/time) becomes the creation times its freshness rule reads."""

from __future__ import annotations

import csv
import datetime as dt
import pathlib

from reco_sidecar.artifact.writer import ItemMetadata
from reco_sidecar.common.errors import InvalidArgument
from reco_sidecar.training.interactions import read_item_metadata

_BUILTIN = {"item_id", "category", "tags", "created_at"}


def _seconds(raw: str, where: str) -> int:
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidArgument(f"{where}: created_at {raw!r} is neither Unix seconds nor ISO 8601",
                              field="items") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp())


def read(path: pathlib.Path, item_ids: list[str]) -> ItemMetadata:
    """Items absent from the file get "" for every field and creation time 0 (never fresh)."""
    cats, tags = read_item_metadata(path, item_ids)
    fields: dict[str, dict[str, str]] = {}
    created: dict[str, int] = {}
    has_created = False
    with pathlib.Path(path).open(newline="") as f:
        reader = csv.DictReader(f)
        names = [n for n in reader.fieldnames or [] if n not in _BUILTIN]
        has_created = "created_at" in (reader.fieldnames or [])
        for lineno, row in enumerate(reader, start=2):
            item = row["item_id"]
            for name in names:
                fields.setdefault(name, {})[item] = row.get(name) or ""
            if has_created and row.get("created_at"):
                created[item] = max(0, _seconds(row["created_at"] or "", f"{path}:{lineno}"))
    return ItemMetadata(
        cats, tags,
        fields={name: [values.get(i, "") for i in item_ids] for name, values in fields.items()},
        created_at=[created.get(i, 0) for i in item_ids] if has_created else None,
    )
