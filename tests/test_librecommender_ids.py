import numpy as np
import pytest

from reco_sidecar.librecommender.errors import ImportRefused
from reco_sidecar.librecommender.ids import as_strings, unique_index


@pytest.mark.parametrize("values, expected", [
    (np.array([100, 7]), ["100", "7"]),
    (np.array([206.0, 1231.0]), ["206", "1231"]),
    (np.array(["u1", "u2"]), ["u1", "u2"]),
    (np.array(["u1", 5, np.int64(6), 7.0], dtype=object), ["u1", "5", "6", "7"]),
])
def test_ids_become_strings_as_librecommender_users_would_write_them(values: np.ndarray, expected: list[str]) -> None:
    assert as_strings(values, "x") == expected


@pytest.mark.parametrize("values", [
    np.array([1.5]), np.array([np.nan]), np.array([True], dtype=object), np.array([None], dtype=object),
    np.array([b"x"]),
])
def test_ids_that_are_not_strings_or_whole_numbers_are_refused(values: np.ndarray) -> None:
    with pytest.raises(ImportRefused):
        as_strings(values, "x")


def test_duplicate_ids_are_refused() -> None:
    assert unique_index(["a", "b"], "x", "user") == {"a": 0, "b": 1}
    with pytest.raises(ImportRefused, match="user ids are not unique"):
        unique_index(["a", "a"], "x", "user")
