"""Small trained models for tests, made with the project's own CLI code paths."""

from __future__ import annotations

import pathlib

from reco_sidecar.training import als, demo_data, interactions, items, pipeline

DEMO = demo_data.DemoSpec(users=600, items=400, interactions=15_000, clusters=6, seed=3)
PARAMS = als.AlsParams(factors=16, iterations=8, regularization=0.05, alpha=20.0, seed=5)


def train_demo(model_root: pathlib.Path, name: str = "demo", spec: demo_data.DemoSpec = DEMO,
               params: als.AlsParams = PARAMS, data_dir: pathlib.Path | None = None,
               with_metadata: bool = True) -> pathlib.Path:
    data_dir = data_dir or model_root.parent
    csv_path, items_path = demo_data.write(spec, data_dir / f"{name}-interactions.csv")
    data = interactions.read_csv(csv_path)
    if not with_metadata:
        return pipeline.train_als(data, model_root, name, params)
    return pipeline.train_als(data, model_root, name, params, item_metadata=items.read(items_path, data.item_ids))


# The trainer's default types (training/weights.py), as `train` records them.
ONLINE_TYPES = {"view": 0.1, "click": 0.3, "like": 0.7, "share": 1.0}


def online_copy(src_root: pathlib.Path, dst_root: pathlib.Path, name: str = "demo") -> pathlib.Path:
    """A copy of a model root whose version 1 records the event types `train` records (so it
    accepts Feedback) and no `as_of` (every event counts)."""
    import shutil

    shutil.copytree(src_root, dst_root)
    accept_feedback(dst_root / name / "1")
    return dst_root


def accept_feedback(version_dir: pathlib.Path) -> None:
    """Records in a version's manifest the event types `train` records, and no `as_of`."""
    import json

    path = version_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["event_types"] = {k: {"weight": w, "excludes": True} for k, w in ONLINE_TYPES.items()}
    manifest["as_of"] = None
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
