"""Every grpcurl and ghz line in docs/api.md ("From other languages") runs against a real
sidecar, through reflection alone, and does what the text around it says."""

from __future__ import annotations

import json
import pathlib
import re
import shlex
import subprocess
from collections.abc import Iterator

import pytest

from tests.support.gotools import go_tool
from tests.support.requires import require
from tests.support.server import Sidecar, running_sidecar

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "api.md"
RPCS = {"Recommend", "Similar", "BatchRecommend", "Reload", "GetModelStatus"}


def _doc_lines(tool: str) -> list[str]:
    section = DOC.read_text().split("## From other languages", 1)[1]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [line for block in blocks for line in block.splitlines() if line.startswith(f"{tool} ")]


def _argv(line: str, tool_path: str, address: str) -> list[str]:
    argv = shlex.split(line.replace("$ADDR", address))
    return [tool_path, *argv[1:]]


def _json_documents(text: str) -> list[dict[str, object]]:
    decoder, out, i = json.JSONDecoder(), [], 0
    while (i := text.find("{", i)) != -1:
        value, i = decoder.raw_decode(text, i)
        out.append(value)
    return out


@pytest.fixture(scope="module")
def sidecar(demo_root: pathlib.Path) -> Iterator[Sidecar]:
    with running_sidecar(demo_root, "demo", workers=2) as sc:
        yield sc


def test_the_doc_has_a_line_for_every_rpc_and_tool() -> None:
    for tool, pattern in (("grpcurl", r"reco\.v1\.Recommender/(\w+)"), ("ghz", r"reco\.v1\.Recommender\.(\w+)")):
        covered = {m for line in _doc_lines(tool) for m in re.findall(pattern, line)}
        assert covered == RPCS, tool


def test_grpcurl_lines(sidecar: Sidecar) -> None:
    grpcurl = go_tool("grpcurl")
    require(grpcurl is not None, "grpcurl")
    assert grpcurl is not None
    answers: dict[str, list[dict[str, object]]] = {}
    for line in _doc_lines("grpcurl"):
        out = subprocess.run(_argv(line, grpcurl, sidecar.address), capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, f"{line}\n{out.stderr}"
        method = re.search(r"/(\w+)$", line)
        if method:
            answers[method.group(1)] = _json_documents(out.stdout)

    (status,) = answers["GetModelStatus"]
    assert status["version"] == "1" and isinstance(status["userCount"], str), "int64 and uint64 as strings"
    first, stranger = answers["BatchRecommend"]
    assert first["index"] == 0, "-emit-defaults shows index 0"
    assert stranger["error"] == {"code": "NOT_FOUND", "message": "user_id: unknown user 'nobody'"}
    (recommend,) = answers["Recommend"]
    assert recommend["userId"] == "u0000001" and len(recommend["items"]) == 5  # type: ignore[arg-type]
    assert answers["Check"] == [{"status": "SERVING"}]


def test_grpcurl_error_exit_code(sidecar: Sidecar) -> None:
    grpcurl = go_tool("grpcurl")
    require(grpcurl is not None, "grpcurl")
    assert grpcurl is not None
    out = subprocess.run([grpcurl, "-plaintext", "-d", '{"user_id": "u0000001", "n": 0}', sidecar.address,
                          "reco.v1.Recommender/Recommend"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 64 + 3
    assert "InvalidArgument" in out.stderr and "n: must be between 1 and" in out.stderr


def test_ghz_lines(sidecar: Sidecar) -> None:
    ghz = go_tool("ghz")
    require(ghz is not None, "ghz")
    assert ghz is not None
    for line in _doc_lines("ghz"):
        out = subprocess.run([*_argv(line, ghz, sidecar.address), "-O", "json"], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, f"{line}\n{out.stderr}"
        report = json.loads(out.stdout)
        count = int(shlex.split(line)[shlex.split(line).index("-n") + 1])
        assert report["statusCodeDistribution"] == {"OK": count}, (line, report.get("errorDistribution"))
