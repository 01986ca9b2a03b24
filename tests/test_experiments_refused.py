"""Experiments files the parser used to accept, refused by `serve` at start with exit 2
naming the field: weights whose sum overflows to infinity (every user then fell into the
last arm), and names that end in a newline (a regex ending in `$` matches before a final
newline)."""

from __future__ import annotations

import json
import pathlib

import pytest

from harness.procs import run_bounded
from harness.sidecar import command
from reco_sidecar.common.exit_codes import ExitCode

pytestmark = pytest.mark.slow


def _file(arms: list[dict[str, object]], name: str = "e") -> dict[str, object]:
    return {"experiments": [{"name": name, "salt": "s", "share": 1.0, "arms": arms}]}


@pytest.mark.parametrize(("content", "field"), [
    (_file([{"name": "a", "model": "demo", "weight": 1e308}, {"name": "b", "model": "demo", "weight": 1e308}]),
     "experiments[0].arms"),
    (_file([{"name": "a", "model": "demo"}], name="e\n"), "experiments[0].name"),
    (_file([{"name": "a\n", "model": "demo"}]), "experiments[0].arms[0].name"),
    (_file([{"name": "a", "model": "demo\n"}]), "experiments[0].arms[0].model"),
])
def test_serve_refuses_the_file_with_exit_2_naming_the_field(demo_root: pathlib.Path, tmp_path: pathlib.Path,
                                                             content: dict[str, object], field: str) -> None:
    path = tmp_path / "experiments.json"
    path.write_text(json.dumps(content))
    code, out, err, _ = run_bounded(command(demo_root, "demo", 1, ["--experiments", str(path)]), 120)
    assert code == ExitCode.CONFIG, err[-2000:]
    assert f"{field}:" in err and out == ""
