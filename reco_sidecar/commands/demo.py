"""`reco-sidecar demo`: the whole path on an embedded default — generate data, train,
serve with a worker pool, query it over gRPC, print what came back, shut down."""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile

from reco_sidecar.host.readyline import wait_ready
from reco_sidecar.training import demo_data

READY_TIMEOUT = 60


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="make demo data, train, serve, query and print a recommendation")
    p.add_argument("--workdir", type=pathlib.Path, default=None, help="keep data and models here")
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(run=run)


def _serve(root: pathlib.Path, workers: int) -> tuple[subprocess.Popen[bytes], dict[str, object]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "reco_sidecar", "serve", "--model-root", str(root), "--model", "demo",
         "--port", "0", "--workers", str(workers), "--exit-on-stdin-eof"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True,
    )
    try:
        return proc, wait_ready(proc, READY_TIMEOUT)
    except (RuntimeError, TimeoutError):
        os.killpg(proc.pid, signal.SIGKILL)
        raise


def run(args: argparse.Namespace) -> int:
    import grpc

    from reco_sidecar.gen.reco.v1 import reco_pb2, reco_pb2_grpc
    from reco_sidecar.training import interactions, items, pipeline
    from reco_sidecar.training.als import AlsParams

    work = args.workdir or pathlib.Path(tempfile.mkdtemp(prefix="reco-demo-"))
    spec = demo_data.DemoSpec()
    csv_path, items_path = demo_data.write(spec, work / "interactions.csv")
    print(f"1. generated {spec.interactions} interactions ({spec.users} users, {spec.items} items) in {csv_path}")
    data = interactions.read_csv(csv_path)
    version_dir = pipeline.train_als(data, work / "models", "demo", AlsParams(factors=32, iterations=10),
                                     item_metadata=items.read(items_path, data.item_ids))
    print(f"2. trained implicit ALS and published {version_dir}")
    proc, ready = _serve(work / "models", args.workers)
    try:
        print(f"3. serving: {json.dumps(ready)}")
        with grpc.insecure_channel(str(ready["address"])) as channel:
            stub = reco_pb2_grpc.RecommenderStub(channel)  # type: ignore[no-untyped-call]
            user = data.user_ids[0]
            rec = stub.Recommend(reco_pb2.RecommendRequest(user_id=user, n=5), timeout=10)
            print(f"4. Recommend user={user} model={rec.model} v{rec.version}:")
            for item in rec.items:
                print(f"   #{item.rank} {item.item_id} score={item.score:.4f}")
            sim = stub.Similar(reco_pb2.SimilarRequest(item_id=rec.items[0].item_id, n=3), timeout=10)
            print(f"5. Similar to {sim.item_id}: {[(i.item_id, round(i.score, 3)) for i in sim.items]}")
            cold = stub.Recommend(reco_pb2.RecommendRequest(user_id="new-user", n=3), timeout=10)
            print(f"6. unknown user -> {reco_pb2.Source.Name(cold.source)}: {[i.item_id for i in cold.items]}")
            print(f"7. JSON-LD of the first answer: {rec.jsonld[:160]}...")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(30)
    print(f"8. sidecar stopped (exit {code})")
    return 0 if code == 0 else 1
