import io
import os
import pathlib
import pickle
import zipfile
from typing import Any

import numpy as np
import pytest

from reco_sidecar.librecommender import safe_npz
from reco_sidecar.librecommender.errors import ImportRefused, UnsafePickle

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "librecommender"


class _RunsCommand:
    """A pickle payload that runs a shell command when unpickled."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


class _CallsEval:
    def __reduce__(self) -> tuple[Any, ...]:
        return (eval, ("__import__('os').getpid()",))


def _npz_with_object_pickle(path: pathlib.Path, payload: object, name: str = "user_unique_vals") -> pathlib.Path:
    """An .npz whose member claims object dtype and carries `payload` as its pickle."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": (2,)})
    buf.write(pickle.dumps(payload, protocol=3))
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}.npy", buf.getvalue())
    return path


def test_object_arrays_of_string_ids_load(tmp_path: pathlib.Path) -> None:
    arrays = safe_npz.load(FIXTURES / "bpr_model_save" / "bpr_data_info.npz")
    assert arrays["user_unique_vals"].dtype == object
    assert arrays["user_unique_vals"][:2].tolist() == ["u100", "u101"]
    assert arrays["interaction_data"].shape == (2625, 3)
    assert arrays["seed"].tolist() == 42


def test_plain_arrays_match_numpys_own_loader(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "a.npz"
    c = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.savez(path, c=c, f=np.asfortranarray(c.astype(np.int64)), empty=np.zeros((0, 3)), s=np.float64(2.5))
    ours, theirs = safe_npz.load(path), np.load(path)
    for key in ("c", "f", "empty", "s"):
        np.testing.assert_array_equal(ours[key], theirs[key])
        assert ours[key].dtype == theirs[key].dtype and ours[key].shape == theirs[key].shape


def test_object_arrays_written_by_this_numpy_load_too(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "o.npz"
    np.savez(path, ids=np.array(["a", 7, 2.5, None], dtype=object))
    assert safe_npz.load(path)["ids"].tolist() == ["a", 7, 2.5, None]


def test_pickle_naming_os_system_is_refused_and_never_run(tmp_path: pathlib.Path) -> None:
    marker = tmp_path / "pwned"
    path = _npz_with_object_pickle(tmp_path / "evil.npz", _RunsCommand(f"touch {marker}"))
    with pytest.raises(UnsafePickle) as e:
        safe_npz.load(path)
    message = str(e.value)
    assert "refusing to load" in message and "system" in message and "evil.npz[user_unique_vals.npy]" in message
    assert not marker.exists()
    # numpy's own loader with pickles allowed would have run it: the payload is real.
    np.load(path, allow_pickle=True)["user_unique_vals"]
    assert marker.exists()


@pytest.mark.parametrize("payload", [_CallsEval(), np.array([1, 2]).view(np.recarray)], ids=["eval", "recarray"])
def test_any_other_global_is_refused(tmp_path: pathlib.Path, payload: object) -> None:
    path = _npz_with_object_pickle(tmp_path / "x.npz", payload)
    with pytest.raises(UnsafePickle, match="only numpy arrays and plain values"):
        safe_npz.load(path)


def test_a_pickle_of_something_that_is_not_an_array_is_refused(tmp_path: pathlib.Path) -> None:
    path = _npz_with_object_pickle(tmp_path / "x.npz", {"not": "an array"})
    with pytest.raises(ImportRefused, match="not an array"):
        safe_npz.load(path)


def test_truncated_member_and_non_zip_are_refused(tmp_path: pathlib.Path) -> None:
    full = io.BytesIO()
    np.save(full, np.arange(100, dtype=np.float64))
    with zipfile.ZipFile(tmp_path / "t.npz", "w") as z:
        z.writestr("a.npy", full.getvalue()[:-8])
    with pytest.raises(ImportRefused, match="truncated"):
        safe_npz.load(tmp_path / "t.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ImportRefused, match=r"not a readable \.npz"):
        safe_npz.load(tmp_path / "junk.npz")
    with pytest.raises(ImportRefused, match="not found"):
        safe_npz.load(tmp_path / "missing.npz")


def test_only_reads_the_members_asked_for(tmp_path: pathlib.Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "mixed.npz"
    _npz_with_object_pickle(path, _RunsCommand(f"touch {marker}"), name="slot")
    with zipfile.ZipFile(path, "a") as z:
        buf = io.BytesIO()
        np.save(buf, np.ones(3))
        z.writestr("wanted.npy", buf.getvalue())
    assert list(safe_npz.load(path, only=lambda name: name == "wanted")) == ["wanted"]
    assert not marker.exists()
