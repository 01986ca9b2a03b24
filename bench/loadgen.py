"""A small Python gRPC load generator for what ghz does not fit: BatchRecommend over many
processes and connections, each process with its own channel to one worker address, all
starting at the same instant. Processes are spawned (not forked), so no gRPC state crosses a
fork.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BatchJob:
    address: str
    user_ids: list[str]
    n: int
    start_at: float  # time.time() at which to send
    calls: int = 1  # the slice is sent as this many consecutive calls on one channel


def _batch_worker(job: BatchJob) -> dict[str, Any]:
    import grpc

    from reco_sidecar.gen.reco.v1 import reco_pb2, reco_pb2_grpc

    channel = grpc.insecure_channel(job.address, options=[("grpc.max_receive_message_length", 256 << 20)])
    stub = reco_pb2_grpc.RecommenderStub(channel)  # type: ignore[no-untyped-call]
    try:
        grpc.channel_ready_future(channel).result(timeout=30)
        delay = job.start_at - time.time()
        if delay > 0:
            time.sleep(delay)
        started = time.time()
        cpu0 = time.process_time()
        responses = items = item_errors = 0
        status = "OK"
        size = -(-len(job.user_ids) // job.calls)
        first_response = None
        try:
            for c in range(job.calls):
                part = job.user_ids[c * size : (c + 1) * size]
                if not part:
                    break
                for r in stub.BatchRecommend(reco_pb2.BatchRecommendRequest(user_ids=part, n=job.n), timeout=600):
                    if first_response is None:
                        first_response = time.time()
                    responses += 1
                    items += len(r.items)
                    if r.HasField("error"):
                        item_errors += 1
        except grpc.RpcError as e:
            status = e.code().name
        return {"address": job.address, "users": len(job.user_ids), "responses": responses, "items": items,
                "item_errors": item_errors, "status": status, "started": started, "finished": time.time(),
                "client_cpu_s": time.process_time() - cpu0,
                "first_response_s": (first_response - started) if first_response else None}
    finally:
        channel.close()


def batch_recommend(addresses: Sequence[str], user_ids: Sequence[str], *, processes: int, n: int = 10,
                    calls_per_process: int = 1, timeout: float = 900.0) -> dict[str, Any]:
    """Splits user_ids over `processes` processes (round-robin over addresses), all sending at
    once; users/s = all users / (last finish - first start)."""
    ids = list(user_ids)
    per = -(-len(ids) // processes)
    start_at = time.time() + 3.0  # spawn and channel set-up happen before this
    jobs = [BatchJob(addresses[i % len(addresses)], ids[i * per : (i + 1) * per], n, start_at, calls_per_process)
            for i in range(processes) if ids[i * per : (i + 1) * per]]
    ctx = mp.get_context("spawn")
    with ctx.Pool(len(jobs)) as pool:
        parts = pool.map_async(_batch_worker, jobs).get(timeout)
    started = min(p["started"] for p in parts)
    finished = max(p["finished"] for p in parts)
    wall = finished - started
    responses = sum(p["responses"] for p in parts)
    return {"processes": len(jobs), "addresses": sorted(set(addresses)), "users": len(ids), "n": n,
            "calls_per_process": calls_per_process, "wall_s": round(wall, 3),
            "users_per_s": round(responses / wall, 1) if wall > 0 else None, "responses": responses,
            "item_errors": sum(p["item_errors"] for p in parts),
            "statuses": sorted({p["status"] for p in parts}),
            "client_cpu_s": round(sum(p["client_cpu_s"] for p in parts), 2),
            "first_response_s": [round(p["first_response_s"], 3) if p["first_response_s"] else None for p in parts],
            "parts": parts}
