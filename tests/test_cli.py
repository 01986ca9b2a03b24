from __future__ import annotations

import pathlib
import subprocess
import sys


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reco_sidecar", *args], capture_output=True, text=True, timeout=120)


def test_a_missing_input_file_is_a_clear_error_not_a_traceback(tmp_path: pathlib.Path) -> None:
    result = run("train", "--interactions", str(tmp_path / "absent.csv"), "--model-root", str(tmp_path),
                 "--name", "m")
    assert result.returncode == 2
    assert "absent.csv" in result.stderr and "Traceback" not in result.stderr


def test_make_demo_data_then_train_publishes_a_version(tmp_path: pathlib.Path) -> None:
    made = run("make-demo-data", "--out", str(tmp_path / "i.csv"), "--users", "200", "--items", "100",
               "--interactions", "3000")
    assert made.returncode == 0, made.stderr
    trained = run("train", "--interactions", str(tmp_path / "i.csv"), "--items", str(tmp_path / "i_items.csv"),
                  "--model-root", str(tmp_path / "models"), "--name", "demo", "--factors", "8", "--iterations", "3")
    assert trained.returncode == 0, trained.stderr
    assert trained.stdout.strip().splitlines()[-1].endswith(str(tmp_path / "models" / "demo" / "1"))
    assert (tmp_path / "models" / "demo" / "1" / "manifest.json").is_file()


def test_serve_without_a_model_exits_no_model(tmp_path: pathlib.Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run("serve", "--model-root", str(tmp_path), "--model", "empty", "--port", "0")
    assert result.returncode == 4 and "model 'empty' has no complete version" in result.stderr
