"""Runs the Node contract suite (contract/node: @grpc/grpc-js, @grpc/proto-loader, node's own
test runner) against real sidecars this test starts and stops.

Two sidecars: `main` (2 workers; to reload to, a good version with metrics, one whose
checksum fails and one whose factors hold a NaN; small limits to reach every
RESOURCE_EXHAUSTED) and `guarded` (1 worker, bearer tokens, a
model without item metadata, 2 concurrent RPCs at most), which the suite shuts down with
SIGTERM to see new calls refused while a stream in flight finishes.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import uuid
from collections.abc import Mapping

import pytest

from harness.procs import run_bounded
from tests.support.models import DEMO, train_demo
from tests.support.requires import require
from tests.support.server import running_sidecar
from tests.support.versions import copy_version, flip_byte, poison_factors

ROOT = pathlib.Path(__file__).resolve().parents[1]
SUITE = ROOT / "contract" / "node"
TAP_COUNT = re.compile(r"^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$", re.M)

LIMITS = {"max_n": 50, "max_offset": 200, "max_ids": 20, "max_batch_users": 20_000,
          "max_message_bytes": 1 << 20}
MAX_CONCURRENT_RPCS = 2
METRICS = {"precision@10": 0.25, "ndcg@10": 0.5}


def _node_major() -> int | None:
    node = shutil.which("node")
    if node is None:
        return None
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
    return int(version.strip().lstrip("v").split(".")[0])


def _limit_args() -> list[str]:
    return [arg for name, value in LIMITS.items() for arg in (f"--{name.replace('_', '-')}", str(value))]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_node_contract_suite(demo_copy: pathlib.Path, tmp_path: pathlib.Path) -> None:
    major = _node_major()
    require(major is not None and major >= 20, "node 20 or later on PATH (its test runner's options)")
    require((SUITE / "node_modules" / "@grpc" / "grpc-js").is_dir(),
            "contract/node/node_modules (npm ci in contract/node)")

    model_dir = demo_copy / "demo"
    good = copy_version(model_dir, 1, metrics=METRICS)
    broken = copy_version(model_dir, 1)
    flip_byte(model_dir / str(broken) / "item_factors.npy")
    poisoned = copy_version(model_dir, 1)
    poison_factors(model_dir / str(poisoned))

    plain_root = tmp_path / "plain" / "root"
    train_demo(plain_root, "plain", spec=DEMO, with_metadata=False)
    user, admin = "caller-" + uuid.uuid4().hex, "admin-" + uuid.uuid4().hex
    (tmp_path / "callers").write_text(f"{user}\n")
    (tmp_path / "admins").write_text(f"{admin}\n")
    guarded_args = ["--auth-tokens-file", str(tmp_path / "callers"), "--admin-tokens-file", str(tmp_path / "admins"),
                    "--max-concurrent-rpcs", str(MAX_CONCURRENT_RPCS), "--batch-chunk", "16", "--grace", "30"]

    # A relative --model-root: GetModelStatus.path must come back absolute all the same.
    relative_root = pathlib.Path(os.path.relpath(demo_copy))
    with running_sidecar(relative_root, "demo", workers=2,
                         extra_args=["--version", "1", "--batch-chunk", "16", *_limit_args()]) as main, \
            running_sidecar(plain_root, "plain", workers=1, extra_args=guarded_args) as guarded:
        contract = {
            "main": {"address": main.address, "worker_addresses": main.worker_addresses, "model": "demo",
                     "limits": LIMITS, "metrics": METRICS, "broken_file": "item_factors.npy",
                     "versions": {"first": 1, "good": good, "broken": broken, "poisoned": poisoned}},
            "guarded": {"address": guarded.address, "pid": guarded.ready["pid"], "model": "plain",
                        "user_token": user, "admin_token": admin, "max_concurrent_rpcs": MAX_CONCURRENT_RPCS},
        }
        output, spec, returncode = _run_suite(contract)
        # The guarded sidecar's log is part of the message: its last test is a drain.
        assert returncode == 0, spec[-8000:] + output[-3000:] + "\nguarded sidecar:\n" + guarded.stderr()[-3000:]
        # The suite's last test SIGTERMs `guarded`; a clean drain exits 0.
        assert guarded.proc.wait(60) == 0, guarded.stderr()[-3000:]

    counts = {name: int(n) for name, n in TAP_COUNT.findall(output)}
    assert counts.get("tests", 0) >= 20, output[-4000:]
    assert counts["fail"] == 0 and counts.get("cancelled", 0) == 0 and counts.get("skipped", 0) == 0, spec[-8000:]


def _run_suite(contract: Mapping[str, object]) -> tuple[str, str, int]:
    """node --test with TAP on stdout (counted here) and the readable spec report on stderr."""
    env = {**os.environ, "RECO_CONTRACT": json.dumps(contract)}
    # Its own session, so node and anything it spawned die with it.
    code, output, spec, _ = run_bounded(
        ["node", "--test", "--test-concurrency=1",
         "--test-reporter=tap", "--test-reporter-destination=stdout",
         "--test-reporter=spec", "--test-reporter-destination=stderr"], 420, env=env, cwd=SUITE)
    return output, spec, code
