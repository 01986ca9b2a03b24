"""Seconds from publishing a version of the benchmark model (200k users x 100k items x 64
factors) to a model store on a real S3 server (SeaweedFS on loopback) until every replica
serves it: REPLICAS separate `serve --model-store` process trees, each with its own cache,
looking at the store's CURRENT every WATCH seconds.

Each round publishes a new version (a byte copy of the model under the next number) with
`--promote` semantics (claim, files, manifest, marker, then CURRENT) and polls every
replica's GetModelStatus until all serve it. Reported per round: upload seconds (publish
start to CURRENT written) and publish-to-all-serving seconds, with each replica's own time
and download seconds (from its log).

    python -m bench.store_convergence [--replicas 3] [--watch 1] [--rounds 3]
    # writes bench/results/store_convergence.json; needs weed (scripts/seaweedfs.sh builds it)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

from bench import common
from harness import seaweedfs
from harness.bench_model import BenchModel
from harness.scaffold import Deadline, log
from harness.sidecar import Sidecar, running_sidecar

BUCKET = "reco-bench"
STORE = f"s3://{BUCKET}/bench"


def parse_args() -> argparse.Namespace:
    p = common.parser(__doc__, time_limit=1800)
    p.add_argument("--replicas", type=int, default=3)
    p.add_argument("--workers", type=int, default=1, help="workers per replica")
    p.add_argument("--watch", type=float, default=1.0, help="replicas' --watch seconds")
    p.add_argument("--rounds", type=int, default=3)
    return p.parse_args()


def copy_as(model: BenchModel, root: pathlib.Path, version: int) -> pathlib.Path:
    """The benchmark model as version `version` of the same name (only the manifest changes)."""
    tmp = root / model.name / f".tmp-{version}"
    shutil.copytree(model.version_dir, tmp)
    manifest = json.loads((tmp / "manifest.json").read_text())
    manifest["version"] = version
    (tmp / "manifest.json").write_text(json.dumps(manifest))
    dst = root / model.name / str(version)
    tmp.rename(dst)
    return dst


def downloads(sidecar: Sidecar) -> list[float]:
    """This replica's store_download_done seconds, from its log."""
    return [float(e["seconds"]) for e in sidecar.log_events() if e.get("event") == "store_download_done"]


def body(model: BenchModel, deadline: Deadline, result: dict[str, Any], args: argparse.Namespace) -> None:
    from reco_sidecar.gen.reco.v1 import reco_pb2
    from reco_sidecar.store import location
    from reco_sidecar.store.client import make_client
    from reco_sidecar.store.publish import publish
    from reco_sidecar.store.remote import RemoteModel

    binary = seaweedfs.weed_binary()
    if binary is None:
        raise RuntimeError("weed is not built: run scripts/seaweedfs.sh")
    rounds: list[dict[str, Any]] = []
    result.update(replicas=args.replicas, workers_per_replica=args.workers, watch_seconds=args.watch,
                  model_bytes=model.bytes_on_disk(), rounds=rounds)
    with tempfile.TemporaryDirectory(prefix="store-bench-") as tmp_dir:
        tmp = pathlib.Path(tmp_dir)
        with seaweedfs.running_s3(binary, tmp / "weed") as s3, contextlib.ExitStack() as stack:
            env = s3.env()
            s3.client().create_bucket(Bucket=BUCKET)
            os.environ.update(env)  # the publisher reads the same standard variables as the replicas
            remote = RemoteModel(make_client(s3.endpoint), location.parse(STORE), model.name)
            local = tmp / "publisher"
            started = time.monotonic()
            publish(remote, copy_as(model, local, 1), promote=True)
            result["first_publish_seconds"] = round(time.monotonic() - started, 3)
            started = time.monotonic()
            replicas = [stack.enter_context(running_sidecar(
                tmp / f"cache-{i}", model.name, workers=args.workers, tied=True, log_path=tmp / f"replica-{i}.log",
                env={**env, "OMP_NUM_THREADS": "1"}, ready_timeout=deadline.bound(900), stop_grace=5.0,
                extra_args=["--model-store", STORE, "--watch", str(args.watch)])) for i in range(args.replicas)]
            result["replicas_ready_seconds"] = round(time.monotonic() - started, 3)
            stubs = [sc.stub() for sc in replicas]
            for n in range(args.rounds):
                version = n + 2
                source_dir = copy_as(model, local, version)
                log("store_round", version=version)
                t0 = time.monotonic()
                publish(remote, source_dir, promote=True)
                uploaded = time.monotonic() - t0
                serving_at: dict[int, float] = {}
                while len(serving_at) < len(stubs):
                    deadline.bound(1)
                    for i, stub in enumerate(stubs):
                        if i not in serving_at and stub.GetModelStatus(
                                reco_pb2.GetModelStatusRequest(), timeout=10).version == version:
                            serving_at[i] = time.monotonic() - t0
                    time.sleep(0.02)
                rounds.append({"version": version, "upload_seconds": round(uploaded, 3),
                               "publish_to_all_serving_seconds": round(max(serving_at.values()), 3),
                               "per_replica_seconds": [round(serving_at[i], 3) for i in range(len(stubs))]})
                log("store_round_done", **rounds[-1])
                shutil.rmtree(source_dir)
            result["download_seconds_per_replica"] = [downloads(sc) for sc in replicas]
    totals = [r["publish_to_all_serving_seconds"] for r in rounds]
    result["summary"] = {"publish_to_all_serving_seconds_median": round(statistics.median(totals), 3),
                         "publish_to_all_serving_seconds_max": round(max(totals), 3),
                         "upload_seconds_median": round(statistics.median(r["upload_seconds"] for r in rounds), 3)}


def main() -> int:
    args = parse_args()
    return common.run("store_convergence", args, lambda m, d, r: body(m, d, r, args))


if __name__ == "__main__":
    sys.exit(main())
