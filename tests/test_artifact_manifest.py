"""Any manifest.json at all is either a valid Manifest or an ArtifactError naming the field:
never a TypeError, RecursionError or OverflowError (which escaped the supervisor's reload path
and stopped the sidecar). `serve` with `latest` skips such a version and serves the one before."""

from __future__ import annotations

import json
import pathlib
import shutil
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reco_sidecar.artifact import layout, manifest
from reco_sidecar.artifact.manifest import Manifest
from reco_sidecar.common.errors import ArtifactError
from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support.server import running_sidecar

SHA = "0" * 64


def valid() -> dict[str, Any]:
    return {
        "format_version": 1, "name": "demo", "version": 1, "algorithm": "als", "factors": 4,
        "user_count": 3, "item_count": 5, "seen_count": 7, "created_at": "2026-11-25T14:08:00+00:00",
        "files": {name: {"sha256": SHA, "bytes": 10} for name in layout.REQUIRED_FILES},
        "ann": {"library": "annoy", "metric": "angular", "trees": 10, "search_k": 500, "recall_at_10": 0.99,
                "exact_neighbours": 4},
        "training": {"iterations": 3, "evaluation": {"k": 10}}, "metrics": {"ndcg_at_10": 0.2},
        "fold_in": {"regularization": 0.05, "alpha": 20.0}, "source": {"kind": "csv"},
    }


def with_change(path: str, value: object) -> dict[str, Any]:
    raw = valid()
    *parents, last = path.split(".")
    node = raw
    for key in parents:
        node = node[key]
    node[last] = value
    return raw


def test_a_valid_manifest_parses_and_round_trips() -> None:
    m = manifest.parse(valid(), "v")
    assert (m.fold_in, m.ann.exact_neighbours, m.metrics) == ({"regularization": 0.05, "alpha": 20.0}, 4,
                                                             {"ndcg_at_10": 0.2})
    assert manifest.parse(json.loads(json.dumps(m.to_json())), "v") == m


WRONG = [
    ("fold_in.alpha", "lots", "'fold_in.alpha' must be a number, got string"),
    ("fold_in", [1], "'fold_in' must be an object, got array"),
    ("training", [1, 2], "'training' must be an object, got array"),
    ("metrics", [1], "'metrics' must be an object, got array"),
    ("metrics.ndcg_at_10", "high", "'metrics.ndcg_at_10' must be a number, got string"),
    ("ann.exact_neighbours", "fifty", "'ann.exact_neighbours' must be an integer, got string"),
    ("ann.exact_neighbours", 5, "'ann.exact_neighbours' must be between 0 and 4"),
    ("ann.trees", True, "'ann.trees' must be an integer, got boolean"),
    ("ann.recall_at_10", 10**400, "'ann.recall_at_10' must be a finite number"),
    ("ann", None, "'ann' must be an object, got null"),
    ("factors", 1.5, "'factors' must be an integer, got number"),
    ("item_count", 0, "'item_count' must be between 1 and"),
    ("user_count", 2**40, "'user_count' must be between 0 and"),
    ("version", -3, "'version' must be between 1 and"),
    ("name", "", "'name' must not be empty"),
    ("source", "s3://bucket", "'source' must be an object, got string"),
]


@pytest.mark.parametrize(("path", "value", "message"), WRONG)
def test_a_field_of_the_wrong_type_is_refused_naming_it(path: str, value: object, message: str) -> None:
    with pytest.raises(ArtifactError, match="manifest field " + message.replace("(", r"\(")):
        manifest.parse(with_change(path, value), "v")


@pytest.mark.parametrize(("entry", "message"), [
    (1, "'files[\"item_factors.npy\"]' must be an object, got number"),
    ({"sha256": SHA, "bytes": "10"}, "'files[\"item_factors.npy\"].bytes' must be an integer, got string"),
    ({"sha256": SHA, "bytes": -1}, "'files[\"item_factors.npy\"].bytes' must be between 0 and"),
    ({"sha256": "abc", "bytes": 1}, "'files[\"item_factors.npy\"].sha256' must be 64 lowercase hex digits"),
    ({"bytes": 1}, "manifest lacks 'files[\"item_factors.npy\"].sha256'"),
])
def test_a_bad_file_entry_is_refused_naming_the_file(entry: object, message: str) -> None:
    raw = valid()
    raw["files"]["item_factors.npy"] = entry
    with pytest.raises(ArtifactError) as e:
        manifest.parse(raw, "v")
    assert message in str(e.value)


def test_free_form_sections_may_not_nest_without_bound() -> None:
    deep: object = 1
    for _ in range(manifest.MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(ArtifactError, match="'training' nests deeper than"):
        manifest.parse(with_change("training.notes", deep), "v")


@pytest.mark.parametrize("text", [
    '{"training": ' + "[" * 100_000 + "]" * 100_000 + "}",  # RecursionError inside json
    '{"format_version": ' + "9" * 5000 + "}",  # beyond int()'s digit limit
    "\udcff",
    "[]",
])
def test_unparsable_manifest_bytes_are_refused(text: str) -> None:
    with pytest.raises(ArtifactError, match=r"manifest\.json is"):
        manifest.parse_bytes(text.encode("utf-8", "surrogateescape"), "v", "v/manifest.json")


def test_an_oversized_manifest_is_refused_without_parsing() -> None:
    with pytest.raises(ArtifactError, match="larger than"):
        manifest.parse_bytes(b" " * (manifest.MAX_MANIFEST_BYTES + 1), "v", "v/manifest.json")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
FIELDS = [*valid(), "ann.trees", "ann.search_k", "ann.recall_at_10", "ann.exact_neighbours", "ann.metric",
          "ann.library", "fold_in.alpha", "metrics.x", "training.x"]


def outcome(raw: object) -> None:
    try:
        result = manifest.parse(raw, "v")
    except ArtifactError:
        return
    assert isinstance(result, Manifest)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_is_a_manifest_or_an_artifact_error(raw: object) -> None:
    outcome(raw)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FIELDS), json_values, st.booleans())
def test_any_field_replaced_by_any_json_is_a_manifest_or_an_artifact_error(path: str, value: object,
                                                                          drop: bool) -> None:
    raw = with_change(path, value)
    if drop:
        del raw[path.split(".")[0]]
    outcome(raw)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_bytes_are_a_manifest_or_an_artifact_error(data: bytes) -> None:
    try:
        result = manifest.parse_bytes(data, "v", "v/manifest.json")
    except ArtifactError:
        return
    assert isinstance(result, Manifest)


def publish_bad_copy(model_dir: pathlib.Path, name: str, change: dict[str, Any]) -> None:
    shutil.copytree(model_dir / "1", model_dir / name)
    raw = json.loads((model_dir / name / layout.MANIFEST).read_text())
    raw.update(change)
    (model_dir / name / layout.MANIFEST).write_text(json.dumps(raw))


def test_serve_latest_skips_a_version_with_a_mistyped_field_and_one_named_with_a_superscript(
        demo_copy: pathlib.Path) -> None:
    model_dir = demo_copy / "demo"
    publish_bad_copy(model_dir, "2", {"version": 2, "fold_in": {"alpha": "lots"}})
    publish_bad_copy(model_dir, "²", {"version": 3})
    with running_sidecar(demo_copy, "demo", extra_args=["--version", "latest"]) as sc:
        status = sc.stub().GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=10)
        assert status.version == 1
        skipped = [e for e in sc.log_events() if e.get("event") == "version_skipped"]
        assert [e["version"] for e in skipped] == [2]
        assert "manifest field 'fold_in.alpha' must be a number, got string" in skipped[0]["error"]
