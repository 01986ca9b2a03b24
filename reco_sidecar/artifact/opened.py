"""A version directory pinned by open file descriptors: what is verified is what is loaded.

The directory is opened once and every file relative to that descriptor; each file's size is
checked against the manifest (and the manifest's sizes against bounds from its counts) before
any byte is read, its sha256 is computed through the same descriptor, and arrays and the ANN
index are then mapped from it. A file renamed over a verified one afterwards is another inode
and never reaches the model. (A file written in place, which no publisher does, would change
pages under any memory map; versions are immutable once published.)

Files are opened with O_NONBLOCK so that a FIFO named like a model file cannot block the open;
anything but a regular file is refused before it is read. A read or map that fails (EIO from a
bad disk or a network file system) is an ArtifactError naming the file, like any other fault
of the version.
"""

from __future__ import annotations

import io
import math
import os
import pathlib
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType

import numpy as np

from reco_sidecar.artifact import checksums, expected, layout
from reco_sidecar.artifact import manifest as manifest_mod
from reco_sidecar.artifact.manifest import Manifest
from reco_sidecar.common.errors import ArtifactError

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


def fd_path(fd: int) -> str:
    """Where an open descriptor really points (symlinks and renames since resolved)."""
    return os.readlink(f"/proc/self/fd/{fd}")


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def unreadable(path: pathlib.Path, e: OSError) -> ArtifactError:
    return ArtifactError(path, f"cannot be read: {e.strerror or e}")


@dataclass
class PinnedFile:
    name: str
    path: pathlib.Path  # for messages only; reads go through fd
    fd: int
    key: checksums.Key
    size: int

    @property
    def proc_path(self) -> str:
        """A path that opens this very inode again, for libraries that take only a path (annoy)."""
        return f"/proc/self/fd/{self.fd}"

    def digest(self) -> str:
        """sha256 of the whole file (cached by its identity)."""
        try:
            return checksums.digest_fd(self.fd)
        except OSError as e:
            raise unreadable(self.path, e) from None

    def read(self) -> bytes:
        data = bytearray(self.size)
        view, got = memoryview(data), 0
        while got < self.size:
            try:
                n = os.preadv(self.fd, [view[got:]], got)
            except OSError as e:
                raise unreadable(self.path, e) from None
            if n == 0:
                raise ArtifactError(self.path, f"shrank to {got} bytes while being read")
            got += n
        return bytes(data)


class OpenedVersion:
    """Open descriptors of a version directory and every file its manifest lists. Close it (or
    use it as a context manager) once the model holds its own mappings."""

    def __init__(self, version_dir: pathlib.Path, model_root: pathlib.Path | None = None) -> None:
        self.dir = pathlib.Path(version_dir)
        self.files: dict[str, PinnedFile] = {}
        self.dir_fd = -1
        root = pathlib.Path(model_root) if model_root is not None else self.dir.parent.parent
        try:
            self.dir_fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ArtifactError(self.dir, "version directory does not exist") from None
        except OSError as e:
            raise ArtifactError(self.dir, f"version directory cannot be opened: {e.strerror}") from None
        try:
            self.real_dir = fd_path(self.dir_fd)
            real_root = os.path.realpath(root)
            if not _inside(self.real_dir, real_root) or self.real_dir == real_root:
                raise ArtifactError(self.dir, f"resolves outside the model root {real_root} (to {self.real_dir})")
            self.manifest = self._read_manifest()
        except BaseException:
            self.close()
            raise

    def _read_manifest(self) -> Manifest:
        where = self.dir / layout.MANIFEST
        try:
            fd = os.open(layout.MANIFEST, _OPEN_FLAGS, dir_fd=self.dir_fd)
        except FileNotFoundError:
            raise ArtifactError(self.dir, "no manifest.json (incomplete or not a model version)") from None
        except OSError as e:
            raise ArtifactError(where, f"manifest.json cannot be opened: {e.strerror}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ArtifactError(where, "is not a regular file")
            data = os.pread(fd, manifest_mod.MAX_MANIFEST_BYTES + 1, 0)
        except OSError as e:
            raise unreadable(where, e) from None
        finally:
            os.close(fd)
        return manifest_mod.parse_bytes(data, self.dir, where)

    def open_all(self, *, checksums_too: bool = True) -> None:
        """Opens and checks every file the manifest lists and the sidecar reads: sizes first
        (against the bound, then the manifest), checksums after."""
        man = self.manifest
        known = {name: entry for name, entry in man.files.items() if expected.max_bytes(name, man) is not None}
        for name, entry in known.items():
            bound = expected.max_bytes(name, man)
            assert bound is not None
            if entry.bytes > bound:
                raise ArtifactError(self.dir / name, f"manifest says {entry.bytes} bytes, more than the {bound} "
                                    "bytes this file can hold for the counts the manifest gives")
        for name, entry in known.items():
            f = self._open(name)
            if f.size != entry.bytes:
                raise ArtifactError(f.path, f"size {f.size} bytes, manifest says {entry.bytes} (truncated or replaced)")
        if checksums_too:
            # hashlib releases the GIL while hashing: files hash in parallel on every core
            with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1, max(1, len(self.files)))) as pool:
                digests = dict(zip(self.files, pool.map(PinnedFile.digest, self.files.values()), strict=True))
            for name, f in self.files.items():
                if digests[name] != man.files[name].sha256:
                    raise ArtifactError(f.path, "sha256 does not match the manifest (corrupted or replaced)")

    def _open(self, name: str) -> PinnedFile:
        path = self.dir / name
        try:
            fd = os.open(name, _OPEN_FLAGS, dir_fd=self.dir_fd)
        except FileNotFoundError:
            raise ArtifactError(path, "file listed in the manifest is missing") from None
        except OSError as e:
            raise ArtifactError(path, f"cannot be opened: {e.strerror}") from None
        try:
            real = fd_path(fd)
            if os.path.dirname(real) != self.real_dir:
                raise ArtifactError(path, f"resolves outside the version directory (to {real})")
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ArtifactError(path, "is not a regular file")
        except BaseException:
            os.close(fd)
            raise
        pinned = PinnedFile(name, path, fd, checksums.key(st), st.st_size)
        self.files[name] = pinned
        return pinned

    def file(self, name: str) -> PinnedFile:
        return self.files[name]

    def verified_bytes(self, name: str) -> bytes:
        """The whole file, checked against the manifest's sha256 on these very bytes."""
        f = self.files[name]
        data = f.read()
        if checksums.digest_bytes(f.key, data) != self.manifest.files[name].sha256:
            raise ArtifactError(f.path, "sha256 does not match the manifest (corrupted or replaced)")
        return data

    def array(self, name: str, spec: expected.Array | None = None) -> np.ndarray:
        """The .npy file memory-mapped read-only from its pinned descriptor, as a plain ndarray
        (np.memmap's per-slice Python hook costs the scoring loop)."""
        f = self.files[name]
        fh = io.FileIO(f.fd, "rb", closefd=False)
        try:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            offset = fh.tell()
        except Exception as e:
            # numpy parses the header with tokenize, literal_eval and np.dtype, which raise
            # ValueError, SyntaxError, TypeError, tokenize.TokenError ... for a bad one (found by
            # tests/test_artifact_hostile_files.py); only this header read is inside the try
            raise ArtifactError(f.path, f"not a readable .npy array: {e}") from None
        if spec is not None and dtype != spec.dtype:
            raise ArtifactError(f.path, f"dtype {dtype}, expected {spec.dtype}")
        if spec is not None and tuple(shape) != spec.shape:
            raise ArtifactError(f.path, f"shape {tuple(shape)}, expected {spec.shape}")
        if dtype.hasobject:
            raise ArtifactError(f.path, "holds Python objects")
        need = math.prod(shape) * dtype.itemsize  # Python ints: no overflow for absurd shapes
        if offset + need != f.size:
            raise ArtifactError(f.path, f"not a readable .npy array: {f.size} bytes, header says {offset + need}")
        if need == 0:
            return np.zeros(shape, dtype=dtype)
        try:
            mapped = np.memmap(fh, dtype=dtype, mode="r", offset=offset, shape=tuple(shape),
                               order="F" if fortran else "C")
        except OSError as e:  # a file system that cannot map files, or no address space left
            raise ArtifactError(f.path, f"cannot be memory-mapped: {e.strerror or e}") from None
        return mapped.view(np.ndarray)

    def close(self) -> None:
        for f in self.files.values():
            os.close(f.fd)
        self.files = {}
        if self.dir_fd >= 0:
            os.close(self.dir_fd)
            self.dir_fd = -1

    def __enter__(self) -> OpenedVersion:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
