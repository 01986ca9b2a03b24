"""Reads .npz archives without ever running arbitrary pickle code.

numpy stores arrays of Python objects (e.g. string ids) as pickles inside the .npy
members, and `np.load(allow_pickle=True)` would let such a pickle call anything. Here
every member is parsed by hand: plain arrays are read as raw bytes, object arrays go
through an unpickler that can only rebuild numpy arrays, dtypes and numpy scalars.
Everything else a pickle might name is refused before it is ever looked up.
"""

from __future__ import annotations

import importlib
import io
import math
import pathlib
import pickle
import zipfile
from collections.abc import Callable
from typing import IO, Any

import numpy as np

from reco_sidecar.librecommender.errors import ImportRefused, UnsafePickle


def _multiarray() -> Any:
    # numpy 2 moved numpy.core to numpy._core; pickles written by numpy 1 still name the old path.
    try:
        return importlib.import_module("numpy._core.multiarray")
    except ImportError:
        return importlib.import_module("numpy.core.multiarray")


_ma = _multiarray()
ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _ma._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _ma._reconstruct,
    ("numpy.core.multiarray", "scalar"): _ma.scalar,
    ("numpy._core.multiarray", "scalar"): _ma.scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Admits numpy's array reconstruction and plain built-in values, nothing else."""

    def __init__(self, file: IO[bytes], where: str) -> None:
        super().__init__(file)
        self.where = where

    def find_class(self, module: str, name: str) -> Any:
        allowed = ALLOWED.get((module, name))
        if allowed is None:
            raise UnsafePickle(
                self.where,
                f"refusing to load: its pickle names {module}.{name}, but only numpy arrays and plain "
                "values are accepted (a pickle can run code; this one was not loaded)",
            )
        return allowed

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickle(self.where, "refusing to load: its pickle uses persistent ids")


def _object_array(f: IO[bytes], shape: tuple[int, ...], where: str) -> np.ndarray:
    try:
        value = RestrictedUnpickler(f, where).load()
    except UnsafePickle:
        raise
    except Exception as e:  # a malformed pickle can fail in many ways; all mean "not an array"
        raise ImportRefused(where, f"object array does not unpickle: {type(e).__name__}: {e}") from None
    if not isinstance(value, np.ndarray) or value.shape != shape:
        raise ImportRefused(where, f"pickle holds {type(value).__name__}, not an array of shape {shape}")
    return value


def read_npy(f: IO[bytes], where: str) -> np.ndarray:
    """One .npy stream: header by numpy's own parser, data read here."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ImportRefused(where, f".npy format version {version} is not supported")
    except ValueError as e:
        raise ImportRefused(where, f"not a valid .npy array: {e}") from None
    if dtype.hasobject:
        return _object_array(f, shape, where)
    count = math.prod(shape)
    data = f.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise ImportRefused(where, f"truncated: {len(data)} bytes of data, expected {count * dtype.itemsize}")
    return np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C")


def load(path: pathlib.Path, only: Callable[[str], bool] | None = None) -> dict[str, np.ndarray]:
    """The arrays of an .npz by name (member name without '.npy'); `only` picks which to read."""
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as z:
            for member in z.namelist():
                if not member.endswith(".npy") or (only is not None and not only(member[: -len(".npy")])):
                    continue
                # Whole member in memory: zip streams seek slowly, and embeddings are modest in size.
                out[member[: -len(".npy")]] = read_npy(io.BytesIO(z.read(member)), f"{path}[{member}]")
    except FileNotFoundError:
        raise ImportRefused(path, "file not found") from None
    except (zipfile.BadZipFile, OSError) as e:
        raise ImportRefused(path, f"not a readable .npz archive: {e}") from None
    return out
