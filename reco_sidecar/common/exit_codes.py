"""Process exit codes of `reco-sidecar serve` and the other commands."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    # Also argparse's own code for bad flags.
    CONFIG = 2
    PORT_IN_USE = 3
    NO_MODEL = 4
    WORKERS_FAILED = 5
    # A worker's own exit: its model could not be opened.
    WORKER_LOAD_FAILED = 6
