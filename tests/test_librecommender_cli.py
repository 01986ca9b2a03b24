"""`reco-sidecar import-librecommender`: arguments, refusals, and publishing with --reload."""

import json
import pathlib
import shutil

import pytest

from reco_sidecar import cli
from reco_sidecar.common import logs
from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support.server import running_sidecar

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "librecommender"
EXPECTED = json.loads((FIXTURES / "expected_recommend_user_n10.json").read_text())


@pytest.fixture(autouse=True)
def _keep_test_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "configure", lambda *args, **kwargs: None)


def _import(root: pathlib.Path, *args: str, name: str = "lr") -> int:
    return cli.main(["import-librecommender", "--model-root", str(root), "--name", name, "--ann-trees", "10", *args])


@pytest.mark.parametrize("args", [
    [],
    ["--path", str(FIXTURES / "als_model_save")],
    ["--save-embed", str(FIXTURES / "als_save_embed"), "--path", str(FIXTURES / "als_model_save"),
     "--model-name", "als"],
])
def test_source_arguments_must_name_one_form(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str],
                                             args: str) -> None:
    assert _import(tmp_path, *args) == 2
    assert "--save-embed" in capsys.readouterr().err
    assert not (tmp_path / "lr").exists()


def test_refused_input_publishes_nothing_and_says_why(tmp_path: pathlib.Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    folder = shutil.copytree(FIXTURES / "als_save_embed", tmp_path / "embed")
    (folder / "item_embed.json").write_text("{}")
    assert _import(tmp_path / "root", "--save-embed", str(folder)) == 2
    assert "holds 0 item vectors but item2id.json names 240 items" in capsys.readouterr().err
    assert not any((tmp_path / "root" / "lr").glob("[0-9]*"))


def test_manifest_records_algorithm_source_and_hyper_parameters(tmp_path: pathlib.Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert _import(tmp_path, "--path", str(FIXTURES / "bpr_model_save"), "--model-name", "bpr",
                   "--algorithm", "librecommender-bpr-v2") == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "lr" / "1")
    man = json.loads((tmp_path / "lr" / "1" / "manifest.json").read_text())
    assert man["algorithm"] == "librecommender-bpr-v2"
    assert man["factors"] == 17 and man["user_count"] == 120 and man["item_count"] == 240
    assert man["source"]["kind"] == "librecommender" and man["source"]["form"] == "tf_variables"
    assert man["training"]["hyper_parameters"]["loss_type"] == "bpr"
    assert {"cold_start_vector.npy", "default_items.npy"} <= set(man["files"])
    # LibRecommender's files say nothing of event types or seen values: no feedback, documented
    assert man["event_types"] == {} and man["as_of"] is None and "seen_weights.npy" not in man["files"]


def test_import_with_reload_switches_a_running_sidecar(tmp_path: pathlib.Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert _import(tmp_path, "--path", str(FIXTURES / "als_model_save"), "--model-name", "als") == 0
    with running_sidecar(tmp_path, "lr", workers=1) as sidecar:
        stub = sidecar.stub()
        assert stub.GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=10).version == 1
        assert _import(tmp_path, "--save-embed", str(FIXTURES / "als_save_embed"),
                       "--reload", sidecar.address) == 0
        status = stub.GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=10)
        reply = stub.Recommend(reco_pb2.RecommendRequest(user_id="105", n=10), timeout=10)
    assert status.version == 2 and status.algorithm == "librecommender-als"
    assert [i.item_id for i in reply.items] == EXPECTED["als"]["105"]
    assert reply.version == 2
