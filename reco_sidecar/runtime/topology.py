"""Where a worker and its siblings listen, as the supervisor last announced it."""

from __future__ import annotations

import threading

from reco_sidecar.serving.service import WorkerAddress


class WorkerTopology:
    def __init__(self, me: WorkerAddress, shared: str) -> None:
        self._me = me
        self._shared = shared
        self._lock = threading.Lock()
        self._workers = [me]

    def me(self) -> WorkerAddress:
        return self._me

    def workers(self) -> list[WorkerAddress]:
        with self._lock:
            return list(self._workers)

    def shared_address(self) -> str:
        return self._shared

    def update(self, workers: list[WorkerAddress]) -> None:
        with self._lock:
            self._workers = workers
