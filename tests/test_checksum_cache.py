"""The checksum cache is keyed by a file's identity: what a process hands over (`known`) never
covers a file replaced or rewritten since it was hashed, so a worker that takes the
supervisor's digests still hashes, and refuses, a file swapped after verification."""

from __future__ import annotations

import os
import pathlib

from reco_sidecar.artifact import checksums


def _hash_all(d: pathlib.Path) -> dict[str, str]:
    return {p.name: checksums.digest(p) for p in sorted(d.iterdir())}


def test_known_lists_the_hashed_files_and_drops_one_replaced_or_rewritten(tmp_path: pathlib.Path) -> None:
    for name in ("a.npy", "b.npy", "c.npy"):
        (tmp_path / name).write_bytes(name.encode() * 1000)
    digests = _hash_all(tmp_path)
    before = checksums.hashed_bytes()
    assert _hash_all(tmp_path) == digests and checksums.hashed_bytes() == before  # from the cache
    assert sorted(d for _, d in checksums.known(tmp_path)) == sorted(digests.values())

    # b replaced by a rename (another inode), c rewritten in place (new mtime and ctime)
    (tmp_path / "b.new").write_bytes(b"swapped" * 1000)
    os.replace(tmp_path / "b.new", tmp_path / "b.npy")
    st = (tmp_path / "c.npy").stat()
    with (tmp_path / "c.npy").open("r+b") as f:
        f.write(b"X")
    os.utime(tmp_path / "c.npy", ns=(st.st_atime_ns, st.st_mtime_ns))  # even with the old mtime: ctime moved
    assert [d for _, d in checksums.known(tmp_path)] == [digests["a.npy"]]
    assert checksums.digest(tmp_path / "b.npy") != digests["b.npy"]
    assert checksums.digest(tmp_path / "c.npy") != digests["c.npy"]
    assert checksums.hashed_bytes() > before


def test_known_of_a_missing_directory_is_empty(tmp_path: pathlib.Path) -> None:
    assert checksums.known(tmp_path / "gone") == []
