"""Model-store helpers for tests: a bucket of one's own, publishing through the project's
own publisher, replicas (separate `serve` process trees, each with its own cache) that
follow the store, and waiting on their GetModelStatus."""

from __future__ import annotations

import contextlib
import pathlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from harness.procs import wait_until
from harness.seaweedfs import S3Server
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.store import location
from reco_sidecar.store.publish import publish
from reco_sidecar.store.remote import RemoteModel
from tests.support.server import Sidecar, running_sidecar

PREFIX = "models/uro"


def new_bucket(s3: S3Server) -> str:
    name = f"reco-{uuid.uuid4().hex[:12]}"
    s3.client().create_bucket(Bucket=name)
    return name


def store_uri(bucket: str) -> str:
    return f"s3://{bucket}/{PREFIX}"


def remote(s3: S3Server, bucket: str, model: str = "demo") -> RemoteModel:
    return RemoteModel(s3.client(), location.parse(store_uri(bucket)), model)


def publish_version(s3: S3Server, bucket: str, version_dir: pathlib.Path, *, promote: bool = True) -> int:
    return publish(remote(s3, bucket), version_dir, promote=promote)


def object_key(bucket: str, version: int, name: str, model: str = "demo") -> str:
    return location.parse(store_uri(bucket)).file_key(model, version, name)


@contextlib.contextmanager
def replicas(s3: S3Server, bucket: str, caches: list[pathlib.Path], *, watch: float = 0.5,
             endpoint: str | None = None, workers: int = 1, model: str = "demo",
             extra_args: tuple[str, ...] = ()) -> Iterator[list[Sidecar]]:
    """One `serve --model-store` process tree per cache directory, all following the bucket;
    `extra_args` go to every `serve`."""
    env = {**s3.env(), "RECO_S3_ENDPOINT_URL": endpoint or s3.endpoint}
    with contextlib.ExitStack() as stack:
        started = [
            stack.enter_context(running_sidecar(
                cache, model, workers=workers, env=env,
                extra_args=["--model-store", store_uri(bucket), "--watch", str(watch), *extra_args]))
            for cache in caches
        ]
        yield started


# One status channel per running sidecar (closed with it); keyed by pid and address, which a
# later sidecar cannot share while this one lives (an object id can be reused after it dies).
_stubs: dict[tuple[int, str], Any] = {}


def status(sc: Sidecar) -> reco_pb2.GetModelStatusResponse:
    key = (sc.proc.pid, sc.address)
    stub = _stubs.get(key)
    if stub is None:
        stub = _stubs[key] = sc.stub()
    response: reco_pb2.GetModelStatusResponse = stub.GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=10)
    return response


def wait_all(sidecars: list[Sidecar], condition: Callable[[reco_pb2.GetModelStatusResponse], bool],
             what: str, timeout: float = 60.0) -> list[reco_pb2.GetModelStatusResponse]:
    """Polls every replica's status until `condition` holds on all of them."""
    last: list[Any] = []

    def reached() -> list[reco_pb2.GetModelStatusResponse] | None:
        last[:] = [status(sc) for sc in sidecars]
        return list(last) if all(condition(st) for st in last) else None

    try:
        return wait_until(reached, timeout, f"every replica: {what}")
    except TimeoutError:
        raise AssertionError(f"not every replica reached: {what}; last statuses: {last}") from None
