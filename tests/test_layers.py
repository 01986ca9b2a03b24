"""Imports point one way: each layer package imports only itself and the layers below it.

The rule is read from the import statements themselves (function-level imports included,
since those are how cycles hide), so moving a module or adding a reversed import fails here.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "reco_sidecar"

# Lowest first. A module may import its own layer and any layer with a smaller rank.
RANK: dict[str, int] = {
    "gen": 0,
    "common": 0,
    # Helpers for a host that starts or probes a sidecar (its ready line, its health probe):
    # they import nothing of ours, so a host can use them without the server's layers.
    "host": 0,
    "engine": 1,
    "artifact": 2,
    # Learning between retrains, the model side: events, histories and the user solve. Built on
    # the engine's Model alone, so the serving processes (serving, runtime) can use it and it
    # never depends on how versions are stored or loaded.
    "online": 2,
    "manager": 3,
    # The ranking stage: rules, re-ranking and reasons over the engine's models alone; serving
    # applies it, offline evaluation (experiments) ranks arms with it, the runtime rolls it out.
    "ranking": 3,
    "training": 3,
    "store": 3,
    "librecommender": 4,
    "experiments": 4,
    "settings": 4,
    "serving": 5,
    "runtime": 6,
    "commands": 7,
    "cli": 8,
    "__main__": 9,
}
TOP_LEVEL_MODULES = {"__init__", "__main__", "cli", "settings"}

# Packages of one rank do not import each other, except these pairs (importer, imported), each
# with its reason.
SAME_RANK_ALLOWED: dict[tuple[str, str], str] = {}

# Inside runtime/, the same rule one level down: what crosses process boundaries is below both
# sides, and only the supervisor knows the worker (its pool forks the worker's entry point).
RUNTIME_RANK: dict[str, int] = {
    "wire": 0,
    "channel": 1,
    "payload": 1,
    # Online learning's process and the workers' client of it: below the worker (which holds a
    # client) and the supervisor (which forks the learner), on the wire and the channel.
    "learner": 2,
    "worker": 3,
    "store_follower": 3,
    "supervisor": 4,
}


def layer_of(module: str) -> str:
    """`reco_sidecar.engine.model` → `engine`; `reco_sidecar` itself → `__init__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imported_modules(path: pathlib.Path, module: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            if base == "reco_sidecar" or base == "reco_sidecar.runtime":
                # `from reco_sidecar import settings` names a module per alias
                found += [(node.lineno, f"{base}.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, base))
    return [(line, m) for line, m in found if m == "reco_sidecar" or m.startswith("reco_sidecar.")]


def module_name(path: pathlib.Path, root: pathlib.Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def runtime_part(module: str) -> str:
    """`reco_sidecar.runtime.supervisor.loop` → `supervisor`; `reco_sidecar.runtime` → ``."""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "runtime" else ""


def violations(root: pathlib.Path = PACKAGE) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        if "gen" in path.relative_to(root).parts:
            continue
        module = module_name(path, root)
        mine = layer_of(module)
        where = f"{path.relative_to(root.parent)}"
        for line, target in imported_modules(path, module):
            theirs = layer_of(target)
            if theirs == "__init__":
                continue
            if theirs == mine:
                if mine == "runtime":
                    out += runtime_violations(f"{where}:{line}", module, target)
                continue
            if theirs not in RANK or mine not in RANK:
                out.append(f"{where}:{line}: {module} → {target}: unknown layer")
            elif RANK[theirs] > RANK[mine]:
                out.append(f"{where}:{line}: {mine} imports {theirs} ({target})")
            elif RANK[theirs] == RANK[mine] and (mine, theirs) not in SAME_RANK_ALLOWED:
                out.append(f"{where}:{line}: {mine} imports {theirs} of the same rank ({target})")
    return out


def runtime_violations(where: str, module: str, target: str) -> list[str]:
    mine, theirs = runtime_part(module), runtime_part(target)
    if not mine or not theirs or mine == theirs:
        return []
    if mine not in RUNTIME_RANK or theirs not in RUNTIME_RANK:
        return [f"{where}: runtime/{mine} → runtime/{theirs}: not in RUNTIME_RANK"]
    if RUNTIME_RANK[theirs] >= RUNTIME_RANK[mine]:
        return [f"{where}: runtime/{mine} imports runtime/{theirs} ({target})"]
    return []


def test_imports_point_down_the_layers() -> None:
    assert violations() == []


def test_no_module_stands_outside_a_layer_package() -> None:
    loose = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in TOP_LEVEL_MODULES)
    assert loose == []
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()} <= set(RANK)


@pytest.mark.parametrize(
    ("where", "statement"),
    [
        ("engine/extra.py", "from reco_sidecar.serving import service\n"),
        ("artifact/extra.py", "def f():\n    from reco_sidecar.manager import manager\n"),
        ("serving/extra.py", "from reco_sidecar import runtime\n"),
        ("common/extra.py", "import reco_sidecar.engine.model\n"),
        ("manager/extra.py", "from ..serving import batcher\n"),
        ("store/extra.py", "from reco_sidecar.manager import manager\n"),
        ("experiments/extra.py", "from reco_sidecar import settings\n"),
        ("runtime/worker/extra.py", "from reco_sidecar.runtime.supervisor import pool\n"),
        ("runtime/wire.py", "from reco_sidecar.runtime import channel\n"),
    ],
)
def test_a_reversed_import_is_caught(tmp_path: pathlib.Path, where: str, statement: str) -> None:
    root = tmp_path / "reco_sidecar"
    target = root / where
    target.parent.mkdir(parents=True)
    for folder in (target.parent, target.parent.parent):
        if folder != root:
            (folder / "__init__.py").write_text("")
    target.write_text(statement)
    found = violations(root)
    assert len(found) == 1, found
    assert where.split("/")[0] in found[0]


# Around the package: the harness serves tests/, loadtest/ and bench/, and reco_sidecar knows none of them.
TREES: dict[str, set[str]] = {
    "reco_sidecar": set(),
    "harness": {"reco_sidecar"},
    "loadtest": {"reco_sidecar", "harness"},
    "bench": {"reco_sidecar", "harness"},
    "tests": {"reco_sidecar", "harness"},
}


def tree_violations(root: pathlib.Path = PACKAGE.parent) -> list[str]:
    out = []
    for tree, allowed in TREES.items():
        for path in sorted((root / tree).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if not isinstance(node, ast.Import | ast.ImportFrom):
                    continue
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [] if node.level else [node.module or ""])
                for name in names:
                    top = name.split(".")[0]
                    if top in TREES and top != tree and top not in allowed:
                        out.append(f"{path.relative_to(root)}:{node.lineno}: {tree} imports {top} ({name})")
    return out


def test_the_harness_and_the_package_import_none_of_their_users() -> None:
    assert tree_violations() == []


def test_a_reversed_harness_import_is_caught(tmp_path: pathlib.Path) -> None:
    for tree in TREES:
        (tmp_path / tree).mkdir()
    (tmp_path / "harness" / "x.py").write_text("def f() -> None:\n    from tests.support import load\n")
    (tmp_path / "reco_sidecar" / "y.py").write_text("import harness.procs\n")
    (tmp_path / "bench" / "z.py").write_text("from loadtest import run\n")
    found = tree_violations(tmp_path)
    assert [f.split(": ", 1)[1] for f in found] == [
        "reco_sidecar imports harness (harness.procs)", "harness imports tests (tests.support)",
        "bench imports loadtest (loadtest)"], found


def test_the_supervisors_loop_stays_thin() -> None:
    """docs/architecture.md promises the pre-fork master's loop in at most 250 lines: what it
    hands work to (the pool, the router, the learner's handle, start-up) grows instead."""
    lines = (PACKAGE / "runtime" / "supervisor" / "loop.py").read_text().count("\n")
    assert lines <= 250, f"runtime/supervisor/loop.py has {lines} lines"
