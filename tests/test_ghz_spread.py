"""The benchmark's closed-loop rows spread their callers over every worker's own address
(docs/performance.md, "Where the callers land"): one ghz per worker, run at once, the reports
merged. Against a real 2-worker sidecar with the real ghz."""

from __future__ import annotations

import json
import pathlib

import pytest

from harness import ghz_run
from harness.ghz_run import GhzRun
from harness.gotools import find as find_ghz
from harness.scaffold import Deadline
from tests.support.requires import require
from tests.support.server import running_sidecar

pytestmark = pytest.mark.slow


def test_a_spread_run_reaches_every_worker_and_counts_every_call(demo_root: pathlib.Path,
                                                                 tmp_path: pathlib.Path) -> None:
    from reco_sidecar.artifact import loader

    ghz = find_ghz("ghz")
    require(ghz is not None, "ghz")
    assert ghz is not None
    users = loader.open_model(demo_root / "demo" / "1").users.ids
    data = tmp_path / "recommend.json"
    data.write_text(json.dumps([{"user_id": users[i], "n": 10} for i in range(50)]))
    flags = ["--protoset", str(ghz_run.protoset(tmp_path))]
    run = GhzRun("spread", "Recommend", data, concurrency=4, connections=4, duration_s=1.5, spread=True)
    with running_sidecar(demo_root, "demo", workers=2) as sc:
        summary = ghz_run.run_ghz_spread(ghz, flags, sc.worker_addresses, run, tmp_path / "merged.json",
                                         Deadline(120))
        assert summary["targets"] == sc.worker_addresses
    parts = [json.loads((tmp_path / f"merged.{i}.json").read_text()) for i in range(2)]
    # each worker's address took an even share of the callers, and answered them
    assert [p["options"]["host"] for p in parts] == summary["targets"]
    assert [(p["options"]["concurrency"], p["options"]["connections"]) for p in parts] == [(2, 2), (2, 2)]
    assert all(p["count"] > 0 and p["statusCodeDistribution"] == {"OK": p["count"]} for p in parts)
    assert summary["count"] == sum(p["count"] for p in parts) == len(json.loads((tmp_path / "merged.json")
                                                                             .read_text())["details"])
    assert summary["status_codes"] == {"OK": summary["count"]} and summary["errors"] == 0
    assert summary["rps"] == pytest.approx(sum(p["rps"] for p in parts), rel=0.01)
    with pytest.raises(ValueError, match="closed-loop"):
        ghz_run.run_ghz_spread(ghz, flags, ["127.0.0.1:1"], GhzRun("rate", "Recommend", data, rps=10, spread=True),
                               tmp_path / "rate.json", Deadline(10))
