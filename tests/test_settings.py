"""Every serve option from its flag or its RECO_* variable, documented in --help, checked."""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from reco_sidecar import cli, settings
from reco_sidecar.common import logs
from reco_sidecar.common.exit_codes import ExitCode

# A value for each option type, unlike every default, so that reading it is visible.
SAMPLES: dict[object, str] = {
    settings._positive_int: "7",
    settings._non_negative_float: "1.5",
    settings._positive_float: "2.5",
    settings._port: "4321",
    settings._ratio: "0.25",
    settings._bool: "true",
    pathlib.Path: "/somewhere/else",
}


def serve_parser() -> argparse.ArgumentParser:
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser: argparse.ArgumentParser = sub.choices["serve"]
    return parser


def serve_options() -> list[argparse.Action]:
    return [a for a in serve_parser()._actions if a.option_strings and a.dest != "help"]


def env_name(action: argparse.Action) -> str:
    return "RECO_" + action.dest.upper()


def sample(action: argparse.Action) -> str:
    return SAMPLES.get(action.type, "text-value")


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RECO_")}
    return subprocess.run([sys.executable, "-m", "reco_sidecar", *args], capture_output=True, text=True,
                          timeout=120, env={**clean, **(env or {})})


def test_the_serve_options_are_the_settings_fields() -> None:
    fields = {f for f in settings.ServeSettings.__dataclass_fields__} - {"log_level", "log_format"}
    assert {a.dest for a in serve_options()} == fields


@pytest.mark.parametrize("action", serve_options(), ids=lambda a: a.option_strings[0])
def test_each_option_is_read_from_its_variable(action: argparse.Action, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("RECO_"):
            monkeypatch.delenv(name)
    value = sample(action)
    monkeypatch.setenv(env_name(action), value)
    argv = ["serve"] if action.dest == "model_root" else ["serve", "--model-root", "/models"]
    args = cli.build_parser().parse_args(argv)
    convert = action.type if callable(action.type) else str
    assert getattr(args, action.dest) == convert(value)
    assert convert(value) != action.default or action.dest == "model_root"


def test_a_flag_wins_over_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECO_WORKERS", "3")
    monkeypatch.setenv("RECO_HOST", "0.0.0.0")
    args = cli.build_parser().parse_args(["serve", "--model-root", "/m", "--workers", "5"])
    assert (args.workers, args.host) == (5, "0.0.0.0")


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., int]]:
    """Runs the CLI in this process; a model root that does not exist keeps it from ever serving."""
    for name in list(os.environ):
        if name.startswith("RECO_"):
            monkeypatch.delenv(name)

    def run(*args: str) -> int:
        try:
            return cli.main(list(args))
        except SystemExit as e:
            return int(e.code or 0)

    yield run
    logs.configure("warning")  # cli.main configured logging for this whole process


@pytest.mark.parametrize("variable,value,message", [
    ("RECO_WORKERS", "many", "RECO_WORKERS='many': invalid literal for int()"),
    ("RECO_WORKERS", "0", "RECO_WORKERS='0': must be a positive integer"),
    ("RECO_PORT", "70000", "RECO_PORT='70000': must be a port number"),
    ("RECO_GRACE", "-1", "RECO_GRACE='-1': must not be negative"),
    ("RECO_RELOAD_TIMEOUT", "0", "RECO_RELOAD_TIMEOUT='0': must be positive"),
    ("RECO_EXIT_ON_STDIN_EOF", "maybe", "RECO_EXIT_ON_STDIN_EOF='maybe': must be true or false"),
])
def test_a_bad_variable_is_exit_code_2_naming_it(variable: str, value: str, message: str,
                                                  in_process: Callable[..., int], monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv(variable, value)
    assert in_process("serve", "--model-root", str(tmp_path / "none"), "--model", "demo") == ExitCode.CONFIG
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("args,message", [
    (["--tls-cert", "{f}"], "--tls-cert and --tls-key go together"),
    (["--tls-client-ca", "{f}"], "--tls-client-ca needs --tls-cert and --tls-key"),
    (["--auth-tokens-file", "{missing}"], "is not a readable file"),
    (["--version", "newest"], "--version must be a number or 'latest'"),
    (["--jsonld-item-iri", "https://x/items"], "--jsonld-item-iri must contain {id}"),
])
def test_inconsistent_settings_are_exit_code_2(args: list[str], message: str, in_process: Callable[..., int],
                                               capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    f = tmp_path / "pem"
    f.write_text("x")
    argv = [a.format(f=f, missing=tmp_path / "missing") for a in args]
    assert in_process("serve", "--model-root", str(tmp_path / "none"), "--model", "demo", *argv) \
        == ExitCode.CONFIG
    assert message in capsys.readouterr().err


def test_the_real_process_exits_2_for_a_bad_variable_and_for_bad_settings(demo_root: pathlib.Path) -> None:
    bad_env = run_cli("serve", "--model-root", str(demo_root), env={"RECO_MAX_N": "lots"})
    assert bad_env.returncode == ExitCode.CONFIG and "RECO_MAX_N='lots'" in bad_env.stderr
    assert bad_env.stdout == ""
    bad_flag = run_cli("serve", "--model-root", str(demo_root), "--version", "newest")
    assert bad_flag.returncode == ExitCode.CONFIG and "--version must be a number" in bad_flag.stderr
    assert bad_flag.stdout == ""


def test_serve_help_documents_every_option_with_its_variable(in_process: Callable[..., int],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    # argparse prints the same help in this process as `reco-sidecar serve --help` does.
    assert in_process("serve", "--help") == 0
    text = " ".join(capsys.readouterr().out.split())
    for action in serve_options():
        assert action.option_strings[0] in text
        assert f"[env {env_name(action)}]" in text, action.dest
    for code in ExitCode:
        assert f"{code.value} {code.name}" in text
    assert in_process("--help") == 0
    top = " ".join(capsys.readouterr().out.split())
    assert "RECO_LOG_LEVEL" in top and "RECO_LOG_FORMAT" in top


def test_the_variables_in_help_are_the_ones_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # A variable documented but not read (or the reverse) would show here.
    for action in serve_options():
        monkeypatch.setenv(env_name(action), sample(action))
    args = cli.build_parser().parse_args(["serve"])
    for action in serve_options():
        convert = action.type if callable(action.type) else str
        assert getattr(args, action.dest) == convert(sample(action))


def test_the_operations_guide_lists_every_option_and_variable() -> None:
    guide = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text()
    for action in serve_options():
        assert f"`{action.option_strings[0]}`" in guide, action.dest
        assert f"`{env_name(action)}`" in guide, action.dest


def test_the_operations_guide_states_each_default_the_parser_uses() -> None:
    """A default the guide shows as a value (`3`, `latest`) is the one `serve` applies; one it
    states in words (unset, every model, CPU count) is not a literal value in the parser."""
    import re

    guide = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text()
    checked = 0
    for action in serve_options():
        # a row may name two options (`--tls-cert`, `--tls-key`); the serve table has 4 columns
        flag = re.escape(action.option_strings[0])
        row = re.search(r"^\|[^|\n]*`" + flag + r"`[^|\n]*\| [^|\n]* \| ([^|\n]*) \| [^|\n]* \|$", guide, re.M)
        assert row is not None, action.dest
        cell = row.group(1).strip()
        shown = re.match(r"`([^`]*)`", cell)
        if shown is None:
            assert action.default is None or action.dest == "workers", (action.dest, cell, action.default)
            continue
        value = shown.group(1)
        default = action.default
        if isinstance(default, bool):
            assert value == str(default).lower(), (action.dest, value, default)
        elif isinstance(default, int | float):
            assert float(value) == float(default), (action.dest, value, default)
        else:
            assert value == str(default), (action.dest, value, default)
        checked += 1
    assert checked >= 20
