"""Durability for publishing a version: a rename is only atomic across a crash once the
files it reveals, and the directory holding the rename, have reached the disk."""

from __future__ import annotations

import os
import pathlib


def fsync_path(path: pathlib.Path) -> None:
    """fsync a file or a directory by path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
