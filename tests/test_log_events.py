"""Every log event the code emits is listed in docs/operations.md, so an operator can look up
any line the sidecar writes. Read from the logging calls themselves: `log.info("event", …)`."""

from __future__ import annotations

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}


def emitted(root: pathlib.Path = ROOT / "reco_sidecar") -> dict[str, str]:
    """event -> where it is first emitted."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        if "gen" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in LEVELS
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in ("log", "logger")
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                found.setdefault(node.args[0].value, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def documented() -> set[str]:
    return set(re.findall(r"`([a-z][a-z0-9_]+)`", (ROOT / "docs" / "operations.md").read_text()))


def test_the_scan_finds_the_events() -> None:
    events = emitted()
    assert {"supervisor_start", "reload_done", "worker_timeout", "store_download_done"} <= set(events)


def test_every_log_event_is_in_the_operations_guide() -> None:
    missing = {event: where for event, where in emitted().items() if event not in documented()}
    assert missing == {}
