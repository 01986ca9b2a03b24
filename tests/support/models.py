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
