"""Where a store lives (`s3://bucket/prefix`) and the object keys of its layout."""

from __future__ import annotations

import re
from dataclasses import dataclass

from reco_sidecar.common import names

MARKER = "PUBLISHED"
# Written first, only if absent: one publisher per version number, even when two race.
CLAIM = "UPLOADING"
POINTER = "CURRENT"
# S3 bucket names: 3-63 lowercase letters, digits, dots and hyphens.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True)
class StoreLocation:
    bucket: str
    prefix: str  # "" or ending with "/"

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def model_prefix(self, model: str) -> str:
        return f"{self.prefix}{model}/"

    def version_prefix(self, model: str, version: int) -> str:
        return f"{self.prefix}{model}/{version}/"

    def file_key(self, model: str, version: int, name: str) -> str:
        return f"{self.version_prefix(model, version)}{name}"

    def marker_key(self, model: str, version: int) -> str:
        return self.file_key(model, version, MARKER)

    def claim_key(self, model: str, version: int) -> str:
        return self.file_key(model, version, CLAIM)

    def pointer_key(self, model: str) -> str:
        return f"{self.prefix}{model}/{POINTER}"


def parse(uri: str) -> StoreLocation:
    """`s3://bucket` or `s3://bucket/some/prefix`; raises ValueError saying what is wrong."""
    if not uri.startswith("s3://"):
        raise ValueError(f"must be an s3://BUCKET[/PREFIX] URI, got {uri!r}")
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    if not _BUCKET.fullmatch(bucket):
        raise ValueError(f"{bucket!r} is not a valid bucket name (3-63 of a-z 0-9 . -)")
    parts = [p for p in prefix.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise ValueError(f"prefix {prefix!r} must not contain '.' or '..'")
    return StoreLocation(bucket, "".join(f"{p}/" for p in parts))


def check_model_name(model: str) -> str:
    if not names.is_model_name(model):
        raise ValueError(f"model name {model!r} must be {names.RULE}")
    return model
