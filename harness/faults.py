"""Faults to inject into a running sidecar's model root or process tree, shared by the
fault tests (tests/test_faults.py) and the fault benchmark (bench/faults.py)."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable

import grpc

from harness.procs import stat_fields
from harness.sidecar import Sidecar, recommender
from harness.versions import copy_version
from reco_sidecar.gen.reco.v1 import reco_pb2

# Manifests whose fields have the wrong type or shape; each must make the version FAILED,
# never crash the supervisor (issue 17, fault 1).
BAD_MANIFESTS: dict[str, Callable[[dict[str, object]], object]] = {
    "fold_in_alpha_text": lambda m: m.update(fold_in={"alpha": "lots"}),
    "training_list": lambda m: m.update(training=[1, 2]),
    "metrics_list": lambda m: m.update(metrics=[1]),
    "ann_neighbours_text": lambda m: m.update(ann={**dict(m.get("ann") or {}), "exact_neighbours": "fifty"}),  # type: ignore[call-overload]
    "files_list": lambda m: m.update(files=[1]),
}
DEEP = 100_000


def publish_copy(model_dir: pathlib.Path, src: int, edit: Callable[[dict[str, object]], object] | None = None,
                 raw_manifest: str | None = None, name: str | None = None) -> pathlib.Path:
    """A copy of version `src` as the next version (or as directory `name`), published atomically."""
    number = copy_version(model_dir, src, edit=edit, raw_manifest=raw_manifest, directory=name)
    return model_dir / (name or str(number))


def deep_manifest(model_dir: pathlib.Path, src: int) -> str:
    """Manifest text that nests DEEP lists: json.loads raises RecursionError on it."""
    manifest = json.loads((model_dir / str(src) / "manifest.json").read_text())
    text = json.dumps(manifest)
    return text[:-1] + ', "training": ' + "[" * DEEP + "]" * DEEP + "}"


def huge_file_version(model_dir: pathlib.Path, src: int, size: int) -> pathlib.Path:
    """A version whose manifest vouches for a sparse user-factors file of `size` bytes, with a
    user count that makes that size plausible: the size bounds pass, and verifying it means
    hashing all of it (minutes), which must not keep the supervisor from its other work."""
    def edit(manifest: dict[str, object]) -> None:
        factors = manifest["factors"]
        files = manifest["files"]
        assert isinstance(factors, int) and isinstance(files, dict)
        manifest["user_count"] = size // (4 * factors) + 1
        files["user_factors.npy"] = {"sha256": "0" * 64, "bytes": size}

    dst = publish_copy(model_dir, src, edit)
    with (dst / "user_factors.npy").open("r+b") as f:
        f.truncate(size)
    return dst


def worker_pid(address: str, timeout: float = 5.0) -> int:
    with recommender(address) as stub:
        return int(stub.GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=timeout).worker.pid)


def worker_version(address: str, user: str = "u0000001", timeout: float = 5.0) -> int:
    with recommender(address) as stub:
        return int(stub.Recommend(reco_pb2.RecommendRequest(user_id=user, n=3), timeout=timeout).version)


def answers(condition: Callable[[], bool]) -> Callable[[], bool]:
    """`condition`, with a call that fails (a worker still starting, just killed) read as False."""
    def check() -> bool:
        try:
            return condition()
        except grpc.RpcError:
            return False

    return check


def verifier_pid(sc: Sidecar, workers: set[int]) -> int:
    """The supervisor's one child that is not a worker: its verifier, once a reload started it."""
    children = [p for p in sc.tree_pids()
                if (f := stat_fields(p)) is not None and int(f[1]) == sc.proc.pid and p not in workers]
    return children[0] if len(children) == 1 else 0


def verdict_waiting(pid: int) -> bool:
    """The verifier hashed (CPU spent) and is back waiting for its next job: its verdict is in
    the supervisor's socket, unread if the supervisor is stopped."""
    f = stat_fields(pid)
    if f is None:
        return False
    try:
        wchan = pathlib.Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False
    return int(f[11]) + int(f[12]) >= 5 and f[0] == "S" and "wait_for_more_packets" in wchan
