"""A read-only FUSE file system, spoken directly over /dev/fuse, that mirrors a directory and
answers every read of chosen files with EIO: a disk sector or network file system going bad
under a model version, the way a kernel reports it to the reader (open and stat succeed,
read(2) fails). Needs /dev/fuse and the right to mount (root, as in CI); `available()` says.

Only what reading a directory of regular files needs is implemented (lookup, getattr,
open, read, readdir, release); everything else answers ENOSYS or EROFS."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import pathlib
import stat
import struct
import threading
from collections.abc import Iterator

ROOT = 1
IN_HEADER = struct.Struct("<IIQQIIIHH")  # len, opcode, unique, nodeid, uid, gid, pid, extlen, pad
OUT_HEADER = struct.Struct("<IiQ")  # len, error, unique
ATTR = struct.Struct("<QQQQQQIIIIIIIIII")
ENTRY_OUT = struct.Struct("<QQQQII")
ATTR_OUT = struct.Struct("<QII")
OPEN_OUT = struct.Struct("<QIi")
READ_IN = struct.Struct("<QQI")
DIRENT = struct.Struct("<QQII")
INIT_IN = struct.Struct("<IIII")
INIT_OUT = struct.Struct("<IIIIHHIIHHI")  # padded to 64 bytes below
LOOKUP, FORGET, GETATTR, OPEN, READ, STATFS, RELEASE = 1, 2, 3, 14, 15, 17, 18
INIT, OPENDIR, READDIR, RELEASEDIR, INTERRUPT, DESTROY, BATCH_FORGET = 26, 27, 28, 29, 36, 38, 42
WRITES = {4, 8, 9, 10, 11, 12, 13, 16, 21, 24, 35, 43, 45, 51}  # setattr, mknod, mkdir ... tmpfile
NO_REPLY = {FORGET, BATCH_FORGET, INTERRUPT}
MNT_DETACH = 2
MS_RDONLY, MS_NOSUID, MS_NODEV = 1, 2, 4


def available() -> bool:
    return os.path.exists("/dev/fuse") and os.geteuid() == 0


class FaultyFS:
    def __init__(self, source: pathlib.Path, mountpoint: pathlib.Path, failing: set[str]) -> None:
        self.source = source
        self.mountpoint = mountpoint
        self.failing = failing
        self.names = sorted(p.name for p in source.iterdir())
        self.reads_failed = 0
        self._fd = -1
        self._thread = threading.Thread(target=self._serve, name="faultyfs", daemon=True)

    def mount(self) -> None:
        self._fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
        libc = ctypes.CDLL(None, use_errno=True)
        options = f"fd={self._fd},rootmode=40000,user_id=0,group_id=0,allow_other".encode()
        if libc.mount(b"faultyfs", str(self.mountpoint).encode(), b"fuse.faultyfs",
                      MS_RDONLY | MS_NOSUID | MS_NODEV, options) != 0:
            err = ctypes.get_errno()
            os.close(self._fd)
            raise OSError(err, f"mount {self.mountpoint}: {os.strerror(err)}")
        self._thread.start()

    def unmount(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.umount2(str(self.mountpoint).encode(), MNT_DETACH)
        # Closing the device aborts the connection: nothing can hang on this mount afterwards.
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._thread.join(5)

    # -- the protocol ------------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            try:
                data = os.read(self._fd, 1 << 21)
            except OSError as e:
                if e.errno in (errno.EINTR, errno.EAGAIN, errno.ENOENT):
                    continue  # ENOENT: the request was interrupted before we read it
                return  # ENODEV after the unmount, EBADF after the close
            if len(data) < IN_HEADER.size:
                continue
            _, opcode, unique, node, *_ = IN_HEADER.unpack_from(data)
            if opcode in NO_REPLY:
                continue
            try:
                body = self._handle(opcode, node, data[IN_HEADER.size:])
                self._reply(unique, 0, body)
            except OSError as e:
                self._reply(unique, e.errno or errno.EIO, b"")
            if opcode == DESTROY:
                return

    def _reply(self, unique: int, error: int, body: bytes) -> None:
        with contextlib.suppress(OSError):  # the requester may have gone (an interrupted read)
            os.write(self._fd, OUT_HEADER.pack(OUT_HEADER.size + len(body), -error, unique) + body)

    def _handle(self, opcode: int, node: int, arg: bytes) -> bytes:
        if opcode == INIT:
            _major, minor, readahead, _ = INIT_IN.unpack_from(arg)
            out = INIT_OUT.pack(7, min(minor, 31), readahead, 0, 16, 12, 1 << 20, 1, 0, 0, 0)
            return out.ljust(64, b"\0")
        if opcode == LOOKUP:
            name = arg.split(b"\0", 1)[0].decode()
            if node != ROOT or name not in self.names:
                raise OSError(errno.ENOENT, name)
            child = self.names.index(name) + 2
            return ENTRY_OUT.pack(child, 0, 60, 60, 0, 0) + self._attr(child)
        if opcode == GETATTR:
            return ATTR_OUT.pack(60, 0, 0) + self._attr(node)
        if opcode in (OPEN, OPENDIR):
            return OPEN_OUT.pack(node, 0, 0)
        if opcode == READ:
            _, offset, size = READ_IN.unpack_from(arg)
            name = self.names[node - 2]
            if name in self.failing:
                self.reads_failed += 1
                raise OSError(errno.EIO, name)
            with open(self.source / name, "rb") as f:
                return os.pread(f.fileno(), size, offset)
        if opcode == READDIR:
            _, offset, size = READ_IN.unpack_from(arg)
            return self._dirents(offset, size)
        if opcode in (RELEASE, RELEASEDIR, DESTROY):
            return b""
        if opcode == STATFS:
            return bytes(80)
        raise OSError(errno.EROFS if opcode in WRITES else errno.ENOSYS, str(opcode))

    def _attr(self, node: int) -> bytes:
        if node == ROOT:
            mode, size, nlink = stat.S_IFDIR | 0o555, 0, 2
        elif 2 <= node < len(self.names) + 2:
            mode, size, nlink = stat.S_IFREG | 0o444, (self.source / self.names[node - 2]).stat().st_size, 1
        else:
            raise OSError(errno.ENOENT, str(node))
        return ATTR.pack(node, size, (size + 511) // 512, 0, 0, 0, 0, 0, 0, mode, nlink, 0, 0, 0, 4096, 0)

    def _dirents(self, offset: int, size: int) -> bytes:
        entries = [(".", ROOT, stat.S_IFDIR), ("..", ROOT, stat.S_IFDIR)]
        entries += [(n, i + 2, stat.S_IFREG) for i, n in enumerate(self.names)]
        out = b""
        for index in range(offset, len(entries)):
            name, ino, kind = entries[index]
            raw = name.encode()
            entry = DIRENT.pack(ino, index + 1, len(raw), kind >> 12) + raw
            entry += b"\0" * (-len(entry) % 8)
            if len(out) + len(entry) > size:
                break
            out += entry
        return out


@contextlib.contextmanager
def mounted(source: pathlib.Path, mountpoint: pathlib.Path, failing: set[str]) -> Iterator[FaultyFS]:
    mountpoint.mkdir(exist_ok=True)
    fs = FaultyFS(source, mountpoint, failing)
    fs.mount()
    try:
        yield fs
    finally:
        fs.unmount()
