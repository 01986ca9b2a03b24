"""The one JSON line `serve` prints on stdout once every worker serves (host/readyline.py
reads it), and the same content as the `ready` log event."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

from reco_sidecar.common import logs
from reco_sidecar.settings import ServeSettings

if TYPE_CHECKING:
    from reco_sidecar.runtime.supervisor.pool import Pool

log = logs.get(__name__)


def announce_pool(s: ServeSettings, pool: Pool, serving: dict[str, int]) -> bool:
    """`announce` for a pool whose workers are all ready, serving `serving` (model -> version)."""
    return announce(s.port, [w.address for w in pool.slots], s.default_model, serving[s.default_model], serving,
                    s.shared_address)


def announce(port: int, workers: list[str], model: str, version: int, models: dict[str, int],
             address: str) -> bool:
    """False when nobody reads stdout any more (whoever started us stopped listening)."""
    line: dict[str, Any] = {
        "event": "ready", "port": port, "pid": os.getpid(), "workers": len(workers), "model": model,
        "version": version, "models": models, "address": address, "worker_addresses": workers,
    }
    try:
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        return False
    log.info("ready", **{k: v for k, v in line.items() if k != "event"})
    return True
