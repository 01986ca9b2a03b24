"""Reads libserving's `save_embed(path, model)` output: JSON id maps, embeddings and
consumed items, keyed by LibRecommender's inner ids. Every map must agree with the others
on sizes and ids; anything inconsistent is refused rather than guessed at."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np

from reco_sidecar.librecommender.errors import ImportRefused
from reco_sidecar.librecommender.imported import Imported

FILES = ("user2id.json", "item2id.json", "user_embed.json", "item_embed.json", "user_consumed.json")


def _json(path: pathlib.Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ImportRefused(path, "file not found (is this a save_embed folder?)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ImportRefused(path, f"not valid JSON: {e}") from None


def _inner(key: object, path: pathlib.Path) -> int:
    if isinstance(key, bool) or not isinstance(key, int | str) or not str(key).isdigit():
        raise ImportRefused(path, f"{key!r} is not an inner id (a non-negative integer)")
    return int(key)


def _raw_ids(path: pathlib.Path, what: str) -> list[str]:
    """raw -> inner map as raw ids in inner-id order; inner ids must be exactly 0..n-1."""
    raw = _json(path)
    if not isinstance(raw, dict) or not raw:
        raise ImportRefused(path, f"is not a non-empty {{raw {what} id: inner id}} object")
    out: list[str | None] = [None] * len(raw)
    for raw_id, inner in raw.items():
        row = _inner(inner, path)
        if row >= len(out) or out[row] is not None:
            raise ImportRefused(path, f"inner ids are not 0..{len(raw) - 1} without gaps or repeats "
                                f"({raw_id!r} -> {inner!r})")
        out[row] = raw_id
    return [x for x in out if x is not None]


def _vectors(path: pathlib.Path, count: int, what: str, ids_file: str) -> np.ndarray:
    raw = _json(path)
    if not isinstance(raw, dict):
        raise ImportRefused(path, "is not an {inner id: vector} object")
    if len(raw) != count:
        raise ImportRefused(path, f"holds {len(raw)} {what} vectors but {ids_file} names {count} {what}s")
    rows: list[Any] = [None] * count
    for key, vector in raw.items():
        row = _inner(key, path)
        if row >= count or rows[row] is not None:
            raise ImportRefused(path, f"vector key {key!r} is not one of the inner ids 0..{count - 1}")
        rows[row] = vector
    try:
        matrix = np.asarray(rows, dtype=np.float32)
    except (ValueError, TypeError):
        raise ImportRefused(path, f"{what} vectors are not lists of numbers of one length") from None
    if matrix.ndim != 2:
        raise ImportRefused(path, f"{what} vectors are not lists of numbers of one length")
    return matrix


def _check_id2item(path: pathlib.Path, item_ids: list[str]) -> None:
    if not path.exists():
        return
    raw = _json(path)
    if not isinstance(raw, dict) or len(raw) != len(item_ids):
        raise ImportRefused(path, f"does not map the {len(item_ids)} items of item2id.json")
    for inner, raw_id in raw.items():
        row = _inner(inner, path)
        if row >= len(item_ids) or str(raw_id) != item_ids[row]:
            raise ImportRefused(path, f"inner id {inner} maps to {raw_id!r}, item2id.json says "
                                f"{item_ids[row] if row < len(item_ids) else 'no such item'}")


def _consumed(path: pathlib.Path, n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    raw = _json(path)
    if not isinstance(raw, dict):
        raise ImportRefused(path, "is not an {inner user: [inner items]} object")
    users: list[int] = []
    items: list[int] = []
    for key, consumed in raw.items():
        u = _inner(key, path)
        if u >= n_users or not isinstance(consumed, list):
            raise ImportRefused(path, f"entry {key!r} is not a known user with a list of items")
        rows = [_inner(i, path) for i in consumed]
        if any(i >= n_items for i in rows):
            raise ImportRefused(path, f"user {key} consumed items outside the {n_items} known")
        users.extend([u] * len(rows))
        items.extend(rows)
    return np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)


def read(folder: pathlib.Path) -> Imported:
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise ImportRefused(folder, "is not a folder")
    user_ids = _raw_ids(folder / "user2id.json", "user")
    item_ids = _raw_ids(folder / "item2id.json", "item")
    _check_id2item(folder / "id2item.json", item_ids)
    users = _vectors(folder / "user_embed.json", len(user_ids), "user", "user2id.json")
    items = _vectors(folder / "item_embed.json", len(item_ids), "item", "item2id.json")
    seen_u, seen_i = _consumed(folder / "user_consumed.json", len(user_ids), len(item_ids))
    name_file = folder / "model_name.json"
    model_name = _json(name_file).get("model_name", "") if name_file.exists() else ""
    if not isinstance(model_name, str):
        raise ImportRefused(name_file, "model_name is not a string")
    return Imported(
        user_ids=user_ids,
        item_ids=item_ids,
        user_vectors=users,
        item_vectors=items,
        # save_embed drops the unknown-id row; LibRecommender's is the mean of the user rows.
        cold_start_vector=users.mean(axis=0, dtype=np.float64).astype(np.float32),
        seen_users=seen_u,
        seen_items=seen_i,
        algorithm=f"librecommender-{model_name.lower() or 'unknown'}",
        source={"kind": "librecommender", "form": "save_embed", "path": str(folder),
                "model_name": model_name, "embed_width": int(items.shape[1]) if items.ndim == 2 else 0},
    ).check(folder)
