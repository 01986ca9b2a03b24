"""The worker's side of the control channel: the supervisor's prepare/commit/abort for
all-or-nothing reloads, and the worker's own reload requests forwarded to the supervisor."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any

from reco_sidecar.common import logs
from reco_sidecar.common.errors import FailedPrecondition, InvalidArgument, NotFound, RecoError, Unavailable
from reco_sidecar.manager.manager import ModelManager
from reco_sidecar.runtime.control import Channel
from reco_sidecar.runtime.topology import WorkerTopology
from reco_sidecar.serving.service import ReloadOutcome, WorkerAddress

log = logs.get(__name__)

ERRORS: dict[str, type[RecoError]] = {
    "NOT_FOUND": NotFound,
    "FAILED_PRECONDITION": FailedPrecondition,
    "INVALID_ARGUMENT": InvalidArgument,
    "UNAVAILABLE": Unavailable,
}
RELOAD_TIMEOUT = 600.0


class WorkerControl:
    def __init__(self, channel: Channel, manager: ModelManager, topology: WorkerTopology,
                 events: queue.SimpleQueue[str], drain_timeout: float) -> None:
        self._channel = channel
        self._manager = manager
        self._topology = topology
        self._events = events
        self._drain_timeout = drain_timeout
        self._ids = itertools.count(1)
        self._pending: dict[int, Future[dict[str, Any]]] = {}
        self._thread = threading.Thread(target=self._run, name="control", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def send(self, message: dict[str, Any]) -> bool:
        return self._channel.send(message)

    # Reloader protocol, called from an RPC thread.
    def reload(self, version: str) -> ReloadOutcome:
        request_id = next(self._ids)
        future: Future[dict[str, Any]] = Future()
        self._pending[request_id] = future
        if not self._channel.send({"type": "reload", "id": request_id, "version": version}):
            raise Unavailable("the supervisor is gone")
        try:
            reply = future.result(timeout=RELOAD_TIMEOUT)
        except TimeoutError:
            raise Unavailable("reload did not finish in time") from None
        finally:
            self._pending.pop(request_id, None)
        if not reply["ok"]:
            raise ERRORS.get(reply["code"], FailedPrecondition)(reply["message"], field=reply.get("field"))
        return ReloadOutcome(reply["old"], reply["new"], reply["load_seconds"], reply["workers"])

    def _run(self) -> None:
        while True:
            message = self._channel.recv()
            if message is None:
                self._events.put("supervisor_gone")
                return
            kind = message.get("type")
            if kind == "reload_result":
                future = self._pending.get(message["id"])
                if future is not None:
                    future.set_result(message)
            elif kind in ("prepare", "commit", "switch"):
                threading.Thread(target=self._apply, args=(message,), daemon=True).start()
            elif kind == "abort":
                self._manager.abort(message["version"])
            elif kind == "workers":
                self._topology.update([WorkerAddress(w["pid"], w["address"]) for w in message["workers"]])
            elif kind == "shutdown":
                self._events.put("shutdown_fast" if message.get("fast") else "shutdown")

    def _apply(self, message: dict[str, Any]) -> None:
        kind, version, txn = message["type"], message["version"], message.get("txn")
        started = time.perf_counter()
        try:
            if kind in ("prepare", "switch"):
                self._manager.prepare(version)
            if kind in ("commit", "switch"):
                old = self._manager.commit(version, drain_timeout=self._drain_timeout)
                self.send({"type": "committed", "txn": txn, "version": version, "old": old})
                return
            self.send({"type": "prepared", "txn": txn, "version": version, "ok": True,
                       "load_seconds": time.perf_counter() - started})
        except RecoError as e:
            self.send({"type": "prepared", "txn": txn, "version": version, "ok": False, "error": str(e)})
        except Exception as e:  # a bug must fail the reload, not the worker
            log.exception("control_apply_failed", kind=kind, version=version)
            self.send({"type": "prepared", "txn": txn, "version": version, "ok": False, "error": repr(e)})
