"""Publishing tells a running sidecar to switch to the new version (the Reload RPC)."""

import pathlib
import socket

import pytest

from reco_sidecar import cli
from reco_sidecar.common import logs
from reco_sidecar.common.errors import InvalidArgument, Unavailable
from reco_sidecar.gen.reco.v1 import reco_pb2
from reco_sidecar.training import demo_data, reload
from tests.support.server import running_sidecar


@pytest.fixture(autouse=True)
def _keep_test_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "configure", lambda *args, **kwargs: None)


@pytest.fixture(scope="module")
def csv(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("data") / "demo.csv"
    demo_data.write(demo_data.DemoSpec(users=300, items=150, interactions=6_000, clusters=4, seed=8), out)
    return out


def _train(csv: pathlib.Path, root: pathlib.Path, *extra: str) -> int:
    return cli.main(["train", "--interactions", str(csv), "--model-root", str(root), "--name", "demo",
                     "--factors", "8", "--iterations", "4", "--holdout", "0", "--ann-trees", "5", *extra])


def test_train_with_reload_switches_the_running_sidecar(csv: pathlib.Path, tmp_path: pathlib.Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert _train(csv, tmp_path) == 0
    with running_sidecar(tmp_path, "demo", workers=1) as sidecar:
        stub = sidecar.stub()
        assert stub.GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=10).version == 1
        assert _train(csv, tmp_path, "--holdout", "0.2", "--reload", sidecar.address) == 0
        status = stub.GetModelStatus(reco_pb2.GetModelStatusRequest(), timeout=10)
    assert status.version == 2
    assert "ndcg_at_10" in status.metrics
    assert capsys.readouterr().out.split() == [str(tmp_path / "demo" / "1"), str(tmp_path / "demo" / "2")]


def test_reload_of_a_model_the_sidecar_does_not_serve_fails_clearly(csv: pathlib.Path, tmp_path: pathlib.Path) -> None:
    assert _train(csv, tmp_path) == 0
    with running_sidecar(tmp_path, "demo", workers=1) as sidecar, pytest.raises(Unavailable) as e:
        reload.request_reload(sidecar.address, "other", 1, timeout=10)
    assert "reload at" in str(e.value) and sidecar.address in str(e.value)


def test_reload_with_nothing_listening_fails_within_the_timeout() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(Unavailable, match=r"reload at 127\.0\.0\.1"):
        reload.request_reload(f"127.0.0.1:{port}", "demo", 1, timeout=2)


def test_token_file_gives_its_first_token(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("\n# admin\n  s3cret  \nother\n")
    assert reload.read_token(path) == "s3cret"
    path.write_text("# nothing\n")
    with pytest.raises(InvalidArgument, match="no tokens"):
        reload.read_token(path)


def test_reload_sends_the_admin_token_the_sidecar_asks_for(csv: pathlib.Path, tmp_path: pathlib.Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    tokens = tmp_path / "admin-tokens"
    tokens.write_text("# reload\nadm1n-t0ken\n")
    root = tmp_path / "models"
    assert _train(csv, root) == 0
    with running_sidecar(root, "demo", workers=1, extra_args=["--admin-tokens-file", str(tokens)]) as sidecar:
        with pytest.raises(Unavailable, match="UNAUTHENTICATED"):
            reload.request_reload(sidecar.address, "demo", 1, timeout=10)
        assert _train(csv, root, "--reload", sidecar.address, "--reload-token-file", str(tokens)) == 0
        response = reload.request_reload(sidecar.address, "demo", None, timeout=10, token="adm1n-t0ken")
    assert response.new_version == 2


def test_a_failed_reload_still_names_the_published_version(csv: pathlib.Path, tmp_path: pathlib.Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = _train(csv, tmp_path, "--reload", f"127.0.0.1:{port}", "--reload-timeout", "2")
    out, err = capsys.readouterr()
    assert code == 2
    assert out.strip() == str(tmp_path / "demo" / "1")
    assert "reload at 127.0.0.1" in err


def test_a_bad_token_file_fails_before_training(csv: pathlib.Path, tmp_path: pathlib.Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "tokens"
    empty.write_text("\n")
    code = _train(csv, tmp_path / "models", "--reload", "127.0.0.1:1", "--reload-token-file", str(empty))
    assert code == 2
    assert "holds no tokens" in capsys.readouterr().err
    assert not (tmp_path / "models").exists()
