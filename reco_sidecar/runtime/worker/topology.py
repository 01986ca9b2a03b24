"""Where a worker and its siblings listen, and the model store's status, as the supervisor
last announced them."""

from __future__ import annotations

import threading

from reco_sidecar.serving.contracts import WorkerAddress
from reco_sidecar.store.status import StoreStatus


class WorkerTopology:
    def __init__(self, me: WorkerAddress, shared: str) -> None:
        self._me = me
        self._shared = shared
        self._lock = threading.Lock()
        self._workers = [me]
        self._store: StoreStatus | None = None

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

    def store_status(self) -> StoreStatus | None:
        return self._store  # replaced whole, never mutated: no lock needed to read

    def update_store(self, status: StoreStatus) -> None:
        self._store = status
