"""Command-line entry point: `reco-sidecar <command>` / `python -m reco_sidecar <command>`."""

from __future__ import annotations

import argparse
import importlib
import sys

from reco_sidecar.common import logs
from reco_sidecar.common.errors import ArtifactError, RecoError
from reco_sidecar.runtime.exit_codes import ExitCode

# Imported lazily so that `serve` does not pay for training imports and vice versa.
COMMANDS = (
    "make_demo_data",
    "train",
    "serve",
    "demo",
    "import_librecommender",
    "evaluate",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reco-sidecar", description=__doc__)
    parser.add_argument("--log-level", default=None, help="debug, info, warning, error (env RECO_LOG_LEVEL)")
    parser.add_argument("--log-format", choices=("json", "console"), default=None,
                        help="log line format on stderr (env RECO_LOG_FORMAT)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"reco_sidecar.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"reco_sidecar.commands.{name}":
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    import os

    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    logs.configure(args.log_level or os.environ.get("RECO_LOG_LEVEL", "info"),
                   args.log_format or os.environ.get("RECO_LOG_FORMAT", "json"))
    try:
        return int(args.run(args))
    except (RecoError, ArtifactError) as e:
        print(f"reco-sidecar {args.command}: {e}", file=sys.stderr)
        return ExitCode.CONFIG
    except OSError as e:
        # A missing or unreadable input file is the user's to fix, not a crash to debug.
        print(f"reco-sidecar {args.command}: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return ExitCode.CONFIG
