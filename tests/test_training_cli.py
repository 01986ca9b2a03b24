"""`reco-sidecar train` end to end on a CSV (the database path is in test_training_database)."""

import json
import pathlib

import pytest

from reco_sidecar import cli
from reco_sidecar.common import logs
from reco_sidecar.training import demo_data


@pytest.fixture(autouse=True)
def _keep_test_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    # cli.main points structlog at the current (captured) stderr, which pytest closes after the test.
    monkeypatch.setattr(logs, "configure", lambda *args, **kwargs: None)


@pytest.fixture(scope="module")
def csv(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("data") / "demo.csv"
    demo_data.write(demo_data.DemoSpec(users=500, items=250, interactions=15_000, clusters=5, seed=4), out)
    return out


def test_train_prints_the_path_on_stdout_and_the_metrics_table_on_stderr(csv: pathlib.Path, tmp_path: pathlib.Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["train", "--interactions", str(csv), "--model-root", str(tmp_path), "--name", "demo",
                     "--factors", "16", "--iterations", "6", "--regularization", "1", "--alpha", "10",
                     "--k", "5", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0
    assert out.strip() == str(tmp_path / "demo" / "1")
    assert "precision@5" in err and "popularity" in err
    man = json.loads((tmp_path / "demo" / "1" / "manifest.json").read_text())
    assert {"precision_at_5", "baseline_ndcg_at_5", "coverage_at_5"} <= set(man["metrics"])
    assert man["source"] == {"kind": "csv", "path": str(csv)}


def test_train_bpr_without_evaluation(csv: pathlib.Path, tmp_path: pathlib.Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["train", "--interactions", str(csv), "--model-root", str(tmp_path), "--name", "b",
                     "--algorithm", "bpr", "--factors", "8", "--iterations", "5", "--holdout", "0"])
    err = capsys.readouterr().err
    assert code == 0
    man = json.loads((tmp_path / "b" / "1" / "manifest.json").read_text())
    assert man["algorithm"] == "bpr" and man["factors"] == 9 and man["metrics"] == {}
    assert "popularity" not in err


@pytest.mark.parametrize("data_args", [[], ["--interactions", "x.csv", "--dsn", "postgresql://"]])
def test_exactly_one_data_source_is_required(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str],
                                             data_args: list[str]) -> None:
    code = cli.main(["train", *data_args, "--model-root", str(tmp_path), "--name", "x"])
    assert code == 2
    assert "exactly one of --interactions" in capsys.readouterr().err


def test_bad_weights_are_refused_by_the_parser(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--dsn", "postgresql://", "--weights", "view=x", "--model-root", str(tmp_path),
                  "--name", "x"])
    assert e.value.code == 2
