"""Hot reload through the real process tree: all workers, all or nothing, nothing dropped."""

from __future__ import annotations

import pathlib
import time

import grpc
import pytest

from harness.procs import wait_until
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.training import als
from tests.support.load import Load
from tests.support.models import train_demo
from tests.support.server import Sidecar, running_sidecar
from tests.support.versions import copy_version, flip_byte, poison_factors, truncate

pytestmark = pytest.mark.slow


class Recorder(Load):
    """Client threads over several connections to every worker, recording each answer's version."""

    def __init__(self, sc: Sidecar, threads: int = 6) -> None:
        stubs = [sc.stub(a) for a in sc.worker_addresses for _ in range(2)] + [sc.stub()]

        def call(i: int) -> tuple[float, float, int, int]:
            stub = stubs[i % len(stubs)]
            started = time.monotonic()
            if i % 3 == 2:
                resp = stub.Similar(reco_pb2.SimilarRequest(item_id=f"i{i % 300:07d}", n=5), timeout=10)
            else:
                resp = stub.Recommend(reco_pb2.RecommendRequest(user_id=f"u{i % 500:07d}", n=10), timeout=10)
            return started, time.monotonic(), resp.version, i % len(stubs)

        super().__init__(call, threads)

    @property
    def calls(self) -> list[tuple[float, float, int, int]]:
        """start, end, version, connection of every answered call"""
        return self.result.values

    @property
    def failures(self) -> list[str]:
        return self.result.errors

    def answers_after(self, moment: float, count: int, what: str) -> None:
        """Waits until `count` calls sent after `moment` (a time.monotonic() value) were answered."""
        wait_until(lambda: sum(1 for c in list(self.calls) if c[0] > moment) >= count, 30,
                   f"{count} answers to calls sent after {what}")


@pytest.fixture
def two_versions(demo_copy: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
    train_demo(demo_copy, params=als.AlsParams(factors=16, iterations=8, seed=99), data_dir=tmp_path)
    return demo_copy


def test_twenty_reloads_under_load_drop_nothing_and_switch_every_worker(two_versions: pathlib.Path) -> None:
    with running_sidecar(two_versions, "demo", workers=2, extra_args=["--version", "1"]) as sc:
        admin = sc.stub()
        returned: list[tuple[float, float, int]] = []  # sent, returned, version
        with Recorder(sc) as rec:
            rec.answers_after(0.0, 20, "the start")
            for i in range(20):
                target = 2 if i % 2 == 0 else 1
                sent = time.monotonic()
                resp = admin.Reload(reco_pb2.ReloadRequest(model="demo", version=str(target)), timeout=60)
                assert (resp.old_version, resp.new_version, resp.workers) == (3 - target, target, 2)
                assert resp.load_seconds > 0
                returned.append((sent, time.monotonic(), target))
                # calls between this reload and the next, for the check below
                rec.answers_after(returned[-1][1], 6, f"Reload({target}) returned")
        assert rec.failures == []
        assert {v for _, _, v, _ in rec.calls} == {1, 2}
        # a call that started after Reload(v) returned, and before the next one was sent, answers v
        for (_, done, target), nxt in zip(returned, [*returned[1:], (float("inf"), 0.0, 0)], strict=True):
            window = [c for c in rec.calls if done < c[0] and c[1] < nxt[0]]
            assert window, "no calls observed between reloads"
            stale = [c for c in window if c[2] != target]
            assert stale == [], f"after Reload({target}) returned, answers came from {stale[:3]}"
        st = admin.GetModelStatus(reco_pb2.GetModelStatusRequest())
        assert st.version == 1
        states = {v.version: v.state for v in st.versions}
        assert states[1] == reco_pb2.MODEL_STATE_AVAILABLE and states[2] == reco_pb2.MODEL_STATE_END


@pytest.mark.parametrize("damage", ["bad checksum", "truncated array", "wrong counts", "NaN factors"])
def test_a_broken_version_is_refused_while_the_old_one_serves_every_request(
        demo_copy: pathlib.Path, damage: str) -> None:
    model_dir = demo_copy / "demo"
    if damage == "wrong counts":
        bad = copy_version(model_dir, 1, user_count=12345)
    elif damage == "NaN factors":
        # the manifest vouches for the file: only the workers' full open finds it, so every
        # worker fails to prepare and none may switch
        bad = copy_version(model_dir, 1)
        poison_factors(model_dir / str(bad))
    else:
        bad = copy_version(model_dir, 1)
        (flip_byte if damage == "bad checksum" else truncate)(model_dir / str(bad) / "item_factors.npy")
    with running_sidecar(demo_copy, "demo", workers=2, extra_args=["--version", "1"]) as sc:
        with Recorder(sc) as rec:
            rec.answers_after(0.0, 20, "the start")
            with pytest.raises(grpc.RpcError) as e:
                sc.stub().Reload(reco_pb2.ReloadRequest(version=str(bad)), timeout=60)
            rec.answers_after(time.monotonic(), 20, "the refused reload")
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        details = e.value.details() or ""
        assert details.startswith("version:") and f"version {bad}" in details
        expected = {"bad checksum": "sha256", "truncated array": "size", "wrong counts": "shape",
                    "NaN factors": "NaN"}[damage]
        assert expected in details, details
        assert rec.failures == [] and {v for _, _, v, _ in rec.calls} == {1}
        for address in sc.worker_addresses:
            st = sc.stub(address).GetModelStatus(reco_pb2.GetModelStatusRequest())
            assert st.version == 1
            if damage == "NaN factors":
                failed = [v for v in st.versions if v.version == bad]
                assert failed and failed[0].state == reco_pb2.MODEL_STATE_FAILED and failed[0].error


def test_rollback_is_a_reload_to_an_older_version(two_versions: pathlib.Path) -> None:
    with running_sidecar(two_versions, "demo", workers=2) as sc:
        assert sc.ready["version"] == 2
        resp = sc.stub().Reload(reco_pb2.ReloadRequest(version="1"), timeout=60)
        assert (resp.old_version, resp.new_version) == (2, 1)
        # What the supervisor refuses crosses the process boundary as the same code and field
        # (the input checks themselves are in test_service).
        for request, code, field in [
            (reco_pb2.ReloadRequest(version="99"), grpc.StatusCode.NOT_FOUND, "version"),
            (reco_pb2.ReloadRequest(model="other"), grpc.StatusCode.NOT_FOUND, "model"),
        ]:
            with pytest.raises(grpc.RpcError) as e:
                sc.stub().Reload(request, timeout=30)
            assert e.value.code() == code and (e.value.details() or "").startswith(field + ":")
        assert {sc.stub(a).Recommend(reco_pb2.RecommendRequest(user_id="u0000001", n=3)).version
                for a in sc.worker_addresses} == {1}


def test_watch_picks_up_a_version_published_by_train_under_load(demo_copy: pathlib.Path,
                                                                 tmp_path: pathlib.Path) -> None:
    with running_sidecar(demo_copy, "demo", workers=2, extra_args=["--watch", "0.3"]) as sc:
        with Recorder(sc) as rec:
            rec.answers_after(0.0, 20, "the start")
            train_demo(demo_copy, params=als.AlsParams(factors=16, iterations=8, seed=5), data_dir=tmp_path)
            wait_until(lambda: {sc.stub(a).GetModelStatus(reco_pb2.GetModelStatusRequest()).version
                                for a in sc.worker_addresses} == {2}, 60, "every worker serves version 2")
            rec.answers_after(time.monotonic(), 20, "every worker switched")
        assert rec.failures == []
        assert {v for _, _, v, _ in rec.calls} == {1, 2}
        assert rec.calls[-1][2] == 2
        assert any(e.get("event") == "watch_found_version" for e in sc.log_events())


def test_a_restarted_worker_boots_with_the_reloaded_version(two_versions: pathlib.Path) -> None:
    import os
    import signal

    with running_sidecar(two_versions, "demo", workers=2, extra_args=["--version", "1"]) as sc:
        sc.stub().Reload(reco_pb2.ReloadRequest(version="2"), timeout=60)
        victim = sc.stub(sc.worker_addresses[1]).GetModelStatus(reco_pb2.GetModelStatusRequest()).worker.pid
        os.kill(victim, signal.SIGKILL)

        def replacement() -> reco_pb2.GetModelStatusResponse | None:
            try:
                st = sc.stub(sc.worker_addresses[1]).GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=2)
            except grpc.RpcError:
                return None  # the address is down until the new worker binds it
            return st if st.worker.pid != victim else None

        st = wait_until(replacement, 30, "a new worker answers on the killed one's address")
        assert st is not None and st.version == 2


def test_workers_reuse_the_verified_digests_instead_of_hashing_the_version_again(demo_copy: pathlib.Path) -> None:
    """A Reload to a version first seen after the workers were forked: the supervisor's
    verification hashes it, and each worker maps exactly those files without reading them a
    second time (docs/architecture.md, reloads)."""
    model_dir = demo_copy / "demo"
    fresh = copy_version(model_dir, 1)
    with running_sidecar(demo_copy, "demo", workers=2, extra_args=["--version", "1"]) as sc:
        with Recorder(sc) as rec:
            rec.answers_after(0.0, 20, "the start")
            reply = sc.stub().Reload(reco_pb2.ReloadRequest(version=str(fresh)), timeout=60)
            rec.answers_after(time.monotonic(), 20, "the reload")
        assert reply.new_version == fresh and reply.workers == 2 and rec.failures == []
        loaded = [e for e in sc.log_events() if e.get("event") == "model_loaded" and e.get("version") == fresh]
        assert len({e["pid"] for e in loaded}) == 2, loaded
        assert [e["hashed_bytes"] for e in loaded] == [0, 0], loaded
        # the boot version was hashed before the fork, and inherited: no worker read it either
        booted = [e for e in sc.log_events() if e.get("event") == "model_loaded" and e.get("version") == 1]
        assert booted and all(e["hashed_bytes"] == 0 for e in booted), booted


def _nice(stat_path: pathlib.Path) -> int:
    # /proc/.../stat: "pid (comm) state ..." — field 19 is nice; comm may hold spaces
    return int(stat_path.read_text().rsplit(")", 1)[1].split()[16])


def test_loading_and_verifying_run_below_the_serving_threads_priority(demo_copy: pathlib.Path) -> None:
    """A reload's CPU (the supervisor's verification, each worker's load) yields to serving
    (docs/architecture.md, reloads): the verifier process and the worker thread that loads
    run 10 nice levels below, every serving process's main thread at the sidecar's own."""
    fresh = copy_version(demo_copy / "demo", 1)
    with running_sidecar(demo_copy, "demo", workers=2, extra_args=["--version", "1"]) as sc:
        assert sc.stub().Reload(reco_pb2.ReloadRequest(version=str(fresh)), timeout=60).new_version == fresh
        workers = {w.pid for w in sc.stub().GetModelStatus(reco_pb2.GetModelStatusRequest()).workers}
        assert len(workers) == 2
        own = _nice(pathlib.Path(f"/proc/{sc.proc.pid}/stat"))
        children = pathlib.Path(f"/proc/{sc.proc.pid}/task/{sc.proc.pid}/children").read_text().split()
        helpers = {int(p) for p in children} - workers
        niced = min(19, own + 10)
        assert helpers and all(_nice(pathlib.Path(f"/proc/{pid}/stat")) == niced for pid in helpers), helpers
        for pid in workers:
            tasks = {int(t.name): _nice(t / "stat") for t in pathlib.Path(f"/proc/{pid}/task").iterdir()}
            assert tasks[pid] == own
            assert niced in tasks.values(), tasks
