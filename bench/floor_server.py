"""The floor: the least a Python gRPC server can do around the same Model.

A bare grpc.aio server, N forked workers on one SO_REUSEPORT port, Recommend and Similar
answered with the same response as the sidecar's (items and JSON-LD), and nothing else: no
interceptors, no logs, no metrics, no limits, no validation beyond what is needed to answer.
Two forms:

- inline (`--batch-wait-ms` unset): one `model.recommend([query])` per call, on the loop;
- batched (`--batch-wait-ms W`): concurrent Recommends are queued and scored together by one
  task on the loop, after waiting up to W ms for more.

Prints `{"port": P, "pids": [...]}` on stdout once every worker listens. The sidecar is
measured against it in the same run (bench/floor_vs_sidecar.py).

    python -m bench.floor_server --model-dir DIR [--workers 2] [--port 0] [--batch-wait-ms 2]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import socket
import sys
from typing import Any


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", type=pathlib.Path, required=True, help="one version directory")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--batch-wait-ms", type=float, default=None,
                   help="the batched form: wait up to this long to gather Recommends (unset: inline)")
    p.add_argument("--batch-max-size", type=int, default=64)
    p.add_argument("--item-iri", default="https://uro.example/items/{id}")
    return p.parse_args(argv)


# A worker's ready message: its own port, as 5 ASCII digits (one write, so never interleaved).
_READY_BYTES = 5


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    port = args.port or _free_port(args.host)
    # Fork before any gRPC object exists (grpc/grpc#16001); each child makes its own.
    ready_r, ready_w = os.pipe()
    pids = []
    for _ in range(args.workers):
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            try:
                _worker(args, port, ready_w)
            finally:
                os._exit(0)
        pids.append(pid)
    os.close(ready_w)
    with os.fdopen(ready_r, "rb") as ready:
        got = ready.read(args.workers * _READY_BYTES)
    if len(got) != args.workers * _READY_BYTES:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        print("a worker failed to start", file=sys.stderr)
        return 1
    own = [int(got[i:i + _READY_BYTES]) for i in range(0, len(got), _READY_BYTES)]
    print(json.dumps({"port": port, "pids": pids, "worker_ports": own}), flush=True)

    def stop(_signum: int, _frame: Any) -> None:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in pids:
        os.wait()
    return 0


def _worker(args: argparse.Namespace, port: int, ready_fd: int) -> None:
    import asyncio

    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    asyncio.run(_serve(args, port, ready_fd))


async def _serve(args: argparse.Namespace, port: int, ready_fd: int) -> None:
    import asyncio

    import grpc

    from reco_sidecar.artifact import loader
    from reco_sidecar.engine.query import Provenance, Ranked, RecQuery, Restriction
    from reco_sidecar.gen.reco.v1 import reco_pb2, reco_pb2_grpc
    from reco_sidecar.manager import warmup
    from reco_sidecar.serving.jsonld import Renderer

    model = loader.open_model(args.model_dir, checksums_too=False)
    warmup.warm(model)
    renderer = Renderer(args.item_iri)
    none = Restriction.none()
    ids = model.items.ids
    source_pb = {Provenance.MODEL: reco_pb2.SOURCE_MODEL, Provenance.POPULAR: reco_pb2.SOURCE_POPULAR,
                 Provenance.ANN: reco_pb2.SOURCE_ANN, Provenance.FOLD_IN: reco_pb2.SOURCE_FOLD_IN}

    def items(ranked: Ranked) -> list[reco_pb2.ScoredItem]:
        return [reco_pb2.ScoredItem(item_id=ids[r], score=s, rank=i)
                for i, (r, s) in enumerate(zip(ranked.rows.tolist(), ranked.scores.tolist(), strict=True), start=1)]

    def jsonld(ranked: Ranked, about: str | None = None) -> str:
        return renderer.render(model=model.name, version=model.version, source=ranked.source.value,
                               item_ids=[ids[r] for r in ranked.rows.tolist()], scores=ranked.scores.tolist(),
                               first_position=1, about=about)

    loop = asyncio.get_running_loop()
    queue: list[tuple[RecQuery, asyncio.Future[Ranked]]] = []
    wait = None if args.batch_wait_ms is None else args.batch_wait_ms / 1000.0
    scorer: dict[str, Any] = {"task": None}

    async def drain() -> None:
        # the batched form: one task per burst, waiting W for company, scoring on the loop
        try:
            while queue:
                if wait:
                    await asyncio.sleep(wait)
                batch = queue[: args.batch_max_size]
                del queue[: args.batch_max_size]
                for (_, future), ranked in zip(batch, model.recommend([q for q, _ in batch]), strict=True):
                    if not future.done():
                        future.set_result(ranked)
        finally:
            scorer["task"] = None

    async def score(query: RecQuery) -> Ranked:
        if wait is None:
            return model.recommend([query])[0]
        future: asyncio.Future[Ranked] = loop.create_future()
        queue.append((query, future))
        if scorer["task"] is None:
            scorer["task"] = loop.create_task(drain())
        return await future

    class Floor(reco_pb2_grpc.RecommenderServicer):
        async def Recommend(self, request: Any, context: Any) -> Any:
            row = model.users.row(request.user_id)
            n = request.n or 10
            if row is None:
                ranked = model.popular(0, n, none)
            else:
                ranked = await score(RecQuery(0, n, none, user_row=row))
            return reco_pb2.RecommendResponse(model=model.name, version=model.version, user_id=request.user_id,
                                              items=items(ranked), source=source_pb[ranked.source],
                                              jsonld=jsonld(ranked))

        async def Similar(self, request: Any, context: Any) -> Any:
            row = model.items.row(request.item_id)
            if row is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, "unknown item")
                raise AssertionError("abort raises")
            ranked = model.similar(row, 0, request.n or 10, none)
            return reco_pb2.SimilarResponse(model=model.name, version=model.version, item_id=request.item_id,
                                            items=items(ranked), source=source_pb[ranked.source],
                                            jsonld=jsonld(ranked, about=request.item_id))

    server = grpc.aio.server(options=[("grpc.so_reuseport", 1)])
    reco_pb2_grpc.add_RecommenderServicer_to_server(Floor(), server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"{args.host}:{port}")
    # and a port of its own, as the sidecar's workers have: clients can spread calls over them
    own = server.add_insecure_port(f"{args.host}:0")
    await server.start()
    os.write(ready_fd, f"{own:05d}".encode())
    os.close(ready_fd)
    await server.wait_for_termination()


if __name__ == "__main__":
    raise SystemExit(main())
