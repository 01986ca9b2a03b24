"""Format 2: a version carries what the exact online solve needs (each seen pair's training
value, the event types and weights, the objective, the time its data ends), `train` writes it,
the loader checks it naming the field, and a format-1 version still loads."""

from __future__ import annotations

import json
import pathlib
import shutil
from typing import Any

import numpy as np
import pytest

from reco_sidecar import cli
from reco_sidecar.artifact import layout, loader, manifest
from reco_sidecar.common import logs
from reco_sidecar.common.errors import ArtifactError
from reco_sidecar.engine.eventtypes import EventType
from reco_sidecar.engine.objective import Objective
from reco_sidecar.training import interactions
from tests.support.versions import resign


@pytest.fixture(autouse=True)
def _keep_test_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "configure", lambda *args, **kwargs: None)


def _csv(path: pathlib.Path) -> pathlib.Path:
    rng = np.random.default_rng(1)
    lines = ["user_id,item_id,weight,timestamp"]
    for n in range(600):
        u, i = int(rng.integers(40)), int(rng.integers(30))
        lines.append(f"u{u},i{i},{rng.choice([0.1, 0.3, 0.7, 1.0, -0.3])},{1_700_000_000 + n * 60}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _train(tmp: pathlib.Path, *extra: str) -> pathlib.Path:
    code = cli.main(["train", "--interactions", str(_csv(tmp / "in.csv")), "--model-root", str(tmp / "models"),
                     "--name", "m", "--factors", "4", "--iterations", "2", "--holdout", "0", "--ann-trees", "2",
                     "--no-progress", *extra])
    assert code == 0
    versions = sorted((tmp / "models" / "m").iterdir(), key=lambda p: int(p.name))
    return versions[-1]


@pytest.fixture(scope="module")
def version(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return _train(tmp_path_factory.mktemp("train"), "--weights", "view=0.1,like=0.7,skip=-0.3,hide=-1",
                  "--alpha", "15", "--regularization", "0.2")


def test_train_records_types_objective_as_of_and_each_pairs_value(version: pathlib.Path) -> None:
    raw = json.loads((version / layout.MANIFEST).read_text())
    assert raw["format_version"] == 2
    assert raw["event_types"] == {"hide": {"weight": -1.0, "excludes": True},
                                  "like": {"weight": 0.7, "excludes": True},
                                  "skip": {"weight": -0.3, "excludes": False},
                                  "view": {"weight": 0.1, "excludes": True}}
    assert raw["objective"] == {"form": "implicit", "alpha": 15.0, "regularization": 0.2}
    assert raw["as_of"] == 1_700_000_000 + 599 * 60
    model = loader.open_model(version)
    assert model.info.objective == Objective("implicit", 15.0, 0.2)
    assert model.info.event_types["skip"] == EventType(-0.3, False)
    data = interactions.read_csv(version.parents[2] / "in.csv")
    for user in ("u0", "u7", "u39"):
        rows, values = model.history(model.users.row(user) or 0)
        want = data.matrix[data.user_ids.index(user)]
        # same pairs and values, by item id (the two may number items differently)
        got = {model.items.ids[r]: v for r, v in zip(rows.tolist(), values.tolist(), strict=True)}
        expect = {data.item_ids[c]: float(np.float32(v)) for c, v in zip(want.indices, want.data, strict=True)}
        assert got == pytest.approx(expect)


def test_as_of_leaves_out_later_csv_rows_and_is_recorded(tmp_path: pathlib.Path) -> None:
    path = _train(tmp_path, "--as-of", "2023-11-14T22:13:20+00:00")  # 1_700_000_000
    man = manifest.read(path)
    assert man.as_of == 1_700_000_000.0
    assert man.seen_count == 1  # only the first row is at or before it


def test_a_format_1_version_loads_with_documented_assumptions(version: pathlib.Path, tmp_path: pathlib.Path) -> None:
    old = tmp_path / "m" / "1"
    shutil.copytree(version, old)
    raw = json.loads((old / layout.MANIFEST).read_text())
    for key in ("event_types", "objective", "as_of"):
        del raw[key]
    raw["format_version"] = 1
    del raw["files"][layout.SEEN_WEIGHTS]
    (old / layout.SEEN_WEIGHTS).unlink()
    (old / layout.MANIFEST).write_text(json.dumps(raw))
    model = loader.open_model(old)
    rows, values = model.history(0)
    assert len(rows) and values.tolist() == [1.0] * len(rows)
    assert model.info.objective == Objective("implicit", alpha=raw["fold_in"]["alpha"],
                                             regularization=raw["fold_in"]["regularization"])
    assert (dict(model.info.event_types), model.info.as_of) == ({}, None)


def _manifest_with(version: pathlib.Path, path: str, value: object) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((version / layout.MANIFEST).read_text())
    *parents, last = path.split("/")
    node = raw
    for key in parents:
        node = node[key]
    node[last] = value
    return raw


@pytest.mark.parametrize(("path", "value", "message"), [
    ("event_types", [1], "'event_types' must be an object, got array"),
    ("event_types/view/weight", "heavy", "'event_types[\"view\"].weight' must be a number, got string"),
    ("event_types/view/weight", 0, "'event_types[\"view\"].excludes' must be false for a shown type"),
    ("event_types/view/weight", 1e7, "'event_types[\"view\"].weight' must be a finite number between"),
    ("event_types/view/excludes", "yes", "'event_types[\"view\"].excludes' must be true or false, got string"),
    ("event_types/view", 0.1, "'event_types[\"view\"]' must be an object, got number"),
    ("event_types/" + "t" * 65, {"weight": 1.0}, "needs a name of 1 to 64 bytes"),
    ("event_types/", {"weight": 1.0}, "needs a name of 1 to 64 bytes"),
    ("objective/form", "sgd", "'objective.form' must be one of implicit, spark, got 'sgd'"),
    ("objective/alpha", -1, "'objective.alpha' must be a finite number between 0"),
    ("objective/regularization", None, "'objective.regularization' must be a number, got null"),
    ("objective", "implicit", "'objective' must be an object, got string"),
    ("as_of", "yesterday", "'as_of' must be a number, got string"),
    ("as_of", -5, "'as_of' must be a finite number between 0"),
    ("format_version", 3, "format_version 3 is not supported"),
])
def test_a_bad_online_field_is_refused_naming_it(version: pathlib.Path, path: str, value: object,
                                                  message: str) -> None:
    with pytest.raises(ArtifactError) as caught:
        manifest.parse(_manifest_with(version, path, value), "v")
    assert message in str(caught.value)


def test_non_finite_seen_weights_are_refused(version: pathlib.Path, tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "m" / str(manifest.read(version).version)
    shutil.copytree(version, bad)
    weights = np.load(bad / layout.SEEN_WEIGHTS)
    weights[2] = np.nan
    np.save(bad / layout.SEEN_WEIGHTS, weights)
    resign(bad, layout.SEEN_WEIGHTS)
    with pytest.raises(ArtifactError, match="seen weights contain NaN or infinity"):
        loader.open_model(bad)


def test_seen_weights_of_another_length_are_refused(version: pathlib.Path, tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "m" / str(manifest.read(version).version)
    shutil.copytree(version, bad)
    np.save(bad / layout.SEEN_WEIGHTS, np.ones(3, dtype=np.float32))
    resign(bad, layout.SEEN_WEIGHTS)
    with pytest.raises(ArtifactError, match=layout.SEEN_WEIGHTS):
        loader.open_model(bad)
