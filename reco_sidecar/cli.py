"""Command-line entry point: `reco-sidecar <command>` / `python -m reco_sidecar <command>`."""

from __future__ import annotations

import argparse
import importlib
import sys

from reco_sidecar.common import logs
from reco_sidecar.common.errors import ArtifactError, RecoError
from reco_sidecar.common.exit_codes import ExitCode

# Imported lazily so that `serve` does not pay for training imports and vice versa.
COMMANDS = (
    "make_demo_data",
    "train",
    "serve",
    "demo",
    "import_librecommender",
    "evaluate",
    "promote",
)


def _global_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", default=None, help="debug, info, warning, error (env RECO_LOG_LEVEL)")
    parser.add_argument("--log-format", choices=("json", "console"), default=None,
                        help="log line format on stderr (env RECO_LOG_FORMAT)")


def _named_command(argv: list[str] | None) -> str | None:
    """The command argv names, found without importing any command module."""
    pre = argparse.ArgumentParser(add_help=False)
    _global_options(pre)
    pre.add_argument("command", nargs="?")
    try:
        known, _ = pre.parse_known_args(argv)
    except SystemExit:  # a malformed global option: the full parser reports it
        return None
    name = str(known.command or "").replace("-", "_")
    return name if name in COMMANDS else None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with `argv` naming a command, only that command's module is imported
    (`serve` must not pay for scipy and the trainer: that was a third of its start-up, and
    every worker it forks would carry those modules)."""
    parser = argparse.ArgumentParser(prog="reco-sidecar", description=__doc__)
    _global_options(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    named = _named_command(argv) if argv is not None else None
    for name in (named,) if named else COMMANDS:
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

    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
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
