"""The benchmark model, built once with the CLI (make-demo-data, train) and cached, and ghz
request files with real ids from its id maps."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import random
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from harness.paths import ROOT, python_env
from harness.procs import run_bounded
from harness.scaffold import Deadline, log
from harness.sidecar import Sidecar, running_sidecar
from harness.versions import copy_version


@dataclass(frozen=True)
class ModelSpec:
    users: int = 200_000
    items: int = 100_000
    interactions: int = 5_000_000
    factors: int = 64
    iterations: int = 10
    name: str = "bench"
    seed: int = 42

    @property
    def key(self) -> str:
        return f"{self.users}u-{self.items}i-{self.interactions}x-{self.factors}f-{self.iterations}it-s{self.seed}"


SMOKE_SPEC = ModelSpec(users=2_000, items=1_000, interactions=60_000, factors=16, iterations=5, name="smoke")


@dataclass(frozen=True)
class BenchModel:
    spec: ModelSpec
    root: pathlib.Path
    name: str
    version: int = 1
    build_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def version_dir(self) -> pathlib.Path:
        return self.root / self.name / str(self.version)

    def bytes_on_disk(self, version: int | None = None) -> int:
        d = self.root / self.name / str(version or self.version)
        return sum(p.stat().st_size for p in d.iterdir() if p.is_file())

    def publish_copy(self, version: int) -> pathlib.Path:
        """Version `version` as a byte copy of this one (kept when it is already there)."""
        model_dir = self.root / self.name
        if not (model_dir / str(version) / "manifest.json").is_file():
            copy_version(model_dir, self.version, version)
        return model_dir / str(version)

    def describe(self) -> dict[str, object]:
        return {"spec": dataclasses.asdict(self.spec), "version_dir": str(self.version_dir),
                "bytes_on_disk": self.bytes_on_disk(), "build_seconds": self.build_seconds}


def ensure_model(work: pathlib.Path, spec: ModelSpec, deadline: Deadline, *, rebuild: bool = False) -> BenchModel:
    """The trained model for `spec`, built once with the CLI (make-demo-data, train) and cached.
    `rebuild` trains it again with the current code (after the artifact format or the trainer
    changed: the cache is keyed by the data and training parameters only). A model is built in
    a private directory and renamed into place, so a reader of the cache (another benchmark)
    never sees a half-built one; processes still mapping the old files keep them."""
    base = work / f"model-{spec.key}"
    root = base / "root"
    stamp = base / "built.json"
    if not rebuild and stamp.is_file() and (root / spec.name / "1" / "manifest.json").is_file():
        built = json.loads(stamp.read_text())
        log("model_cached", path=str(root / spec.name / "1"))
        return BenchModel(spec, root, spec.name, 1, built.get("seconds", {}))
    tmp = work / f".building-{spec.key}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        seconds = _build_model(tmp, spec, deadline)
        (tmp / "built.json").write_text(json.dumps({"spec": dataclasses.asdict(spec), "seconds": seconds}, indent=2))
        old = work / f".old-{spec.key}-{os.getpid()}"
        if base.exists():
            os.rename(base, old)
        os.rename(tmp, base)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return BenchModel(spec, root, spec.name, 1, seconds)


def _build_model(base: pathlib.Path, spec: ModelSpec, deadline: Deadline) -> dict[str, float]:
    root = base / "root"
    csv_path = base / "interactions.csv"
    seconds: dict[str, float] = {}
    steps = [
        ("make_demo_data", [sys.executable, "-m", "reco_sidecar", "make-demo-data", "--out", str(csv_path),
                            "--users", str(spec.users), "--items", str(spec.items),
                            "--interactions", str(spec.interactions), "--seed", str(spec.seed)]),
        ("train", [sys.executable, "-m", "reco_sidecar", "--log-level", "warning", "train",
                   "--interactions", str(csv_path), "--model-root", str(root), "--name", spec.name,
                   "--factors", str(spec.factors), "--iterations", str(spec.iterations), "--holdout", "0",
                   "--no-progress"]),
    ]
    for step, cmd in steps:
        log("model_build", step=step, spec=dataclasses.asdict(spec))
        started = time.monotonic()
        code, _, err, _ = run_bounded(cmd, deadline.bound(3600), env=python_env(), cwd=ROOT)
        if code != 0:
            raise RuntimeError(f"{step} failed ({code}): {err[-3000:]}")
        seconds[step] = round(time.monotonic() - started, 1)
    if not (root / spec.name / "1" / "manifest.json").is_file():
        raise RuntimeError(f"training published no version 1 under {root / spec.name}")
    return seconds


def read_ids(version_dir: pathlib.Path) -> tuple[list[str], list[str]]:
    import msgpack

    users: list[str] = msgpack.unpackb((version_dir / "user_ids.msgpack").read_bytes())
    items: list[str] = msgpack.unpackb((version_dir / "item_ids.msgpack").read_bytes())
    return users, items


def write_data_files(version_dir: pathlib.Path, out_dir: pathlib.Path, *, requests: int = 20_000,
                     unknown_user_share: float = 0.05, unknown_item_share: float = 0.0, batch_users: int = 10,
                     n: int = 10, seed: int = 1) -> dict[str, pathlib.Path]:
    """ghz -D files: arrays of requests with real ids from the model's id maps (ghz cycles
    through them), a share of them unknown ids."""
    users, items = read_ids(version_dir)
    rng = random.Random(seed)
    counter = iter(range(10**9))

    def user() -> str:
        return f"unknown-user-{next(counter)}" if rng.random() < unknown_user_share else rng.choice(users)

    def item() -> str:
        return f"unknown-item-{next(counter)}" if rng.random() < unknown_item_share else rng.choice(items)

    out_dir.mkdir(parents=True, exist_ok=True)
    data = {
        "Recommend": [{"user_id": user(), "n": n} for _ in range(requests)],
        "Recommend-unknown": [{"user_id": f"unknown-user-{i}", "n": n} for i in range(1000)],
        "Similar": [{"item_id": item(), "n": n} for _ in range(requests)],
        "BatchRecommend": [{"user_ids": [user() for _ in range(batch_users)], "n": n}
                           for _ in range(max(1, requests // max(1, batch_users // 4)))],
    }
    paths = {}
    for call, rows in data.items():
        path = out_dir / f"data-{call}.json"
        path.write_text(json.dumps(rows))
        paths[call] = path
    return paths


@contextlib.contextmanager
def serve(model: BenchModel, *, workers: int, log_path: pathlib.Path, extra: Sequence[str] = (),
          log_level: str = "info", ready_timeout: float = 120.0) -> Iterator[Sidecar]:
    """The benchmark model served by a sidecar tied to this process (it dies with it), with one
    BLAS thread per worker; its log is kept at `log_path`."""
    with running_sidecar(model.root, model.name, version=model.version, workers=workers, extra_args=extra,
                         log_level=log_level, log_path=log_path, tied=True, env={"OMP_NUM_THREADS": "1"},
                         ready_timeout=ready_timeout, stop_grace=5.0) as sc:
        log("sidecar_ready", workers=workers, address=sc.address, seconds=round(sc.ready_seconds, 3),
            extra=list(extra))
        yield sc
