"""Supervisor faults found from outside (issue 24): SIGTERM racing a verification, the
watched experiments file (oversized, a FIFO, refused in prepare) and a worker stopped
during a watched rollout. Each test failed against the supervisor before its fix."""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import os
import pathlib
import signal
from collections.abc import Callable

import grpc
import pytest

from harness.faults import huge_file_version, verdict_waiting, verifier_pid, worker_pid, worker_version
from harness.procs import wait_until
from harness.versions import copy_version
from reco_sidecar.gen.reco.v1 import reco_pb2, reco_pb2_grpc
from tests.support.server import Sidecar, running_sidecar
from tests.support.versions import poison_factors

pytestmark = pytest.mark.slow


def _events(sc: Sidecar, name: str) -> list[dict[str, object]]:
    return [e for e in sc.log_events() if e.get("event") == name]


# -- item 4: SIGTERM and a verdict in the same loop turn --------------------------------------------


def test_sigterm_with_a_verdict_waiting_exits_0_and_drains(demo_copy: pathlib.Path) -> None:
    """The supervisor is stopped while its verifier finishes; SIGTERM arrives; on SIGCONT one
    select returns both the signal and the verdict. The stop drops the verifier: the verdict
    must then be ignored, not read from a closed socket."""
    # Sparse, so no disk is used; large enough that hashing it takes several CPU ticks.
    version = huge_file_version(demo_copy / "demo", 1, 768 * 1024**2)
    for _round in range(3):
        with running_sidecar(demo_copy, "demo", workers=2, extra_args=["--version", "1", "--grace", "5"]) as sc, \
                concurrent.futures.ThreadPoolExecutor(1) as pool:
            workers = {worker_pid(a) for a in sc.worker_addresses}
            pending = pool.submit(sc.stub().Reload, reco_pb2.ReloadRequest(model="demo", version=version.name),
                                  timeout=60)
            wait_until(functools.partial(verifier_pid, sc, workers), 30, "the verification to start")
            verifier = verifier_pid(sc, workers)
            os.kill(sc.proc.pid, signal.SIGSTOP)
            try:
                wait_until(functools.partial(verdict_waiting, verifier), 60, "the verifier to send its verdict")
                os.kill(sc.proc.pid, signal.SIGTERM)
            finally:
                os.kill(sc.proc.pid, signal.SIGCONT)
            assert sc.proc.wait(timeout=30) == 0
            with pytest.raises(grpc.RpcError):
                pending.result(timeout=30)
            wait_until(lambda: sc.tree_pids() == [], 10, "every process of the tree to exit")
            assert not _events(sc, "workers_killed_after_grace")
            assert [e["code"] for e in _events(sc, "supervisor_exit")] == [0]


# -- items 6 and 10: the watched experiments file --------------------------------------------------

EXPERIMENTS = """
[[experiments]]
name = "feed"
salt = "feed-1"
share = 1.0
arms = [
  { name = "control", model = "demo", weight = 1 },
  { name = "popular", baseline = "popular", weight = 1 },
]
"""


def _reloaded_to(sc: Sidecar, version: int) -> bool:
    return any(e.get("version") == version for e in _events(sc, "reload_done"))


def _peak_rss_kib(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _replaced_and_stopped(sc: Sidecar) -> None:
    """The supervisor still does its work: a killed worker is replaced, SIGTERM ends it."""
    victim = sc.worker_addresses[1]
    old = worker_pid(victim)
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: _answers_pid(victim) not in (0, old), 30, "the killed worker to be replaced")
    os.kill(sc.proc.pid, signal.SIGTERM)
    assert sc.proc.wait(timeout=30) == 0


def _answers_pid(address: str) -> int:
    try:
        return worker_pid(address, timeout=1)
    except grpc.RpcError:
        return 0


def test_an_oversized_experiments_file_is_refused_unread(demo_copy: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """Sparse (no disk used) and far over the 1 MiB limit: the watch refuses it by its size,
    once, and never reads it (the supervisor's peak memory does not grow by it)."""
    exp_file = tmp_path / "experiments.toml"
    exp_file.write_text(EXPERIMENTS)
    with running_sidecar(demo_copy, "demo", workers=2,
                         extra_args=["--experiments", str(exp_file), "--watch", "0.2", "--grace", "5"]) as sc:
        before = _peak_rss_kib(sc.proc.pid)
        big = tmp_path / "big.toml"
        with big.open("wb") as f:
            f.truncate(256 * 1024**2)
        big.rename(exp_file)
        wait_until(lambda: _events(sc, "experiments_refused"), 30, "the oversized file refused")
        refused = _events(sc, "experiments_refused")
        assert refused[0]["field"] == "file" and "larger than 1048576 bytes" in str(refused[0]["error"])
        # The watch keeps polling it (a model version it finds proves later polls happened).
        version = huge_file_version(demo_copy / "demo", 1, 1024)  # refused by size: proves a poll
        wait_until(lambda: any(str(e["version"]) == version.name for e in _events(sc, "version_failed")), 30,
                   "a later watch poll")
        assert len(_events(sc, "experiments_refused")) == 1
        assert _peak_rss_kib(sc.proc.pid) - before < 64 * 1024
        _replaced_and_stopped(sc)


def test_a_file_refused_in_prepare_is_reported_once_and_retried_when_it_changes(
        demo_copy: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """Version 1's factors hold NaN under a manifest that vouches for them: only the workers'
    full open finds it, so the file pinning it is refused in prepare, not by the supervisor."""
    model_dir = demo_copy / "demo"
    copy_version(model_dir, 1)  # version 2 serves
    poison_factors(model_dir / "1")
    exp_file = tmp_path / "experiments.toml"
    exp_file.write_text(EXPERIMENTS)
    with running_sidecar(demo_copy, "demo", workers=2,
                         extra_args=["--experiments", str(exp_file), "--watch", "0.2"]) as sc:
        pinned = EXPERIMENTS.replace('model = "demo", weight', 'model = "demo", version = 1, weight')
        exp_file.write_text(pinned)
        wait_until(lambda: _events(sc, "experiments_refused"), 60, "the pinned file refused")
        assert "version 1" in str(_events(sc, "experiments_refused")[0]["error"])
        # Two more versions found and served by the watch: several polls since the refusal.
        for _ in range(2):
            version = copy_version(model_dir, 2)
            wait_until(functools.partial(_reloaded_to, sc, version), 60, f"the watch to serve version {version}")
        assert len(_events(sc, "experiments_refused")) == 1
        exp_file.write_text(pinned.replace("feed-1", "feed-2"))
        wait_until(lambda: len(_events(sc, "experiments_refused")) == 2, 60, "the changed file tried again")


# -- item 8: a worker's fault during a watched rollout says nothing about the version ---------------


def test_a_worker_stopped_during_a_watched_rollout_does_not_fail_the_version(demo_copy: pathlib.Path) -> None:
    model_dir = demo_copy / "demo"
    args = ["--worker-timeout", "3", "--watch", "0.2"]
    with running_sidecar(demo_copy, "demo", workers=2, extra_args=args) as sc:
        stopped = worker_pid(sc.worker_addresses[1])
        os.kill(stopped, signal.SIGSTOP)
        try:
            version = copy_version(model_dir, 1)  # a good version 2 appears
            wait_until(lambda: _events(sc, "worker_timeout"), 60, "the stopped worker to be timed out")
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(stopped, signal.SIGCONT)
        # Replaced, and the watch tries the version again: every worker serves it.
        wait_until(lambda: all(_serves(a, version) for a in sc.worker_addresses), 60,
                   f"every worker to serve version {version}")
        assert not [e for e in _events(sc, "version_failed") if e.get("version") == version]


def _serves(address: str, version: int) -> bool:
    try:
        return worker_version(address, timeout=1) == version
    except grpc.RpcError:
        return False


RULES = 'hide = ["i0000013"]\n'
# (flag, file name, text, the watch's refusal event, the RPC that reloads it)
READ_BY_THE_LOOP = [
    ("--experiments", "experiments.toml", EXPERIMENTS, "experiments_refused",
     lambda stub: stub.ReloadExperiments(reco_pb2.ReloadExperimentsRequest(), timeout=30)),
    ("--rules", "rules.toml", RULES, "rules_refused",
     lambda stub: stub.ReloadRules(reco_pb2.RankingReloadRulesRequest(), timeout=30)),
]


@pytest.mark.parametrize(("flag", "name", "text", "refused_event", "reload"), READ_BY_THE_LOOP,
                         ids=["experiments", "rules"])
def test_a_fifo_in_place_of_a_file_the_loop_reads_is_refused_without_blocking(
        demo_copy: pathlib.Path, tmp_path: pathlib.Path, flag: str, name: str, text: str, refused_event: str,
        reload: Callable[[reco_pb2_grpc.RecommenderStub], object]) -> None:
    """The supervisor's loop reads these files at every watch poll: a FIFO in a file's place
    (an open for reading would wait for a writer forever) is refused, never waited on."""
    path = tmp_path / name
    path.write_text(text)
    with running_sidecar(demo_copy, "demo", workers=2,
                         extra_args=[flag, str(path), "--watch", "0.2", "--grace", "5"]) as sc:
        path.unlink()
        os.mkfifo(path)
        wait_until(lambda: _events(sc, refused_event), 30, "the FIFO refused")
        refused = _events(sc, refused_event)
        assert refused[0]["field"] == "file" and "not a regular file" in str(refused[0]["error"])
        # An explicit reload is refused the same way, at once.
        with pytest.raises(grpc.RpcError) as e:
            reload(sc.stub())
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "not a regular file" in (
            e.value.details() or "")
        _replaced_and_stopped(sc)
