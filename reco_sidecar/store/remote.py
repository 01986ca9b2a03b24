"""One model in the store: its published versions, their markers and the CURRENT pointer.

Every call goes to the network; nothing here runs on a request path (the publisher and the
follower process use it)."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reco_sidecar.common.versions import version_number
from reco_sidecar.store import paced
from reco_sidecar.store.errors import StoreError, StoreUnreachable
from reco_sidecar.store.location import MARKER, StoreLocation, check_model_name

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

MARKER_FORMAT = 1
# The pointer and the marker are a few bytes; anything larger is not ours.
SMALL_OBJECT_LIMIT = 64 * 1024
# ...and are read in full within this many seconds, however slowly the bytes come.
SMALL_OBJECT_DEADLINE = 30.0


@dataclass(frozen=True)
class Marker:
    """What the marker vouches for: the exact manifest the version was published with."""

    version: int
    manifest_sha256: str
    manifest_bytes: int
    published_at: str

    def to_json(self, model: str) -> dict[str, Any]:
        return {"format": MARKER_FORMAT, "model": model, "version": self.version,
                "manifest_sha256": self.manifest_sha256, "manifest_bytes": self.manifest_bytes,
                "published_at": self.published_at}


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@contextmanager
def translated(what: str) -> Iterator[None]:
    """botocore's errors as StoreError (permanent) or StoreUnreachable (worth retrying)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", ""))
        status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        message = f"{what}: {code or status} {e.response.get('Error', {}).get('Message', '')}".rstrip()
        if status >= 500 or code in ("SlowDown", "RequestTimeout", "ServiceUnavailable", "InternalError"):
            raise StoreUnreachable(message) from None
        raise StoreError(message) from None
    except BotoCoreError as e:
        raise StoreUnreachable(f"{what}: {e}") from None


def _is_missing(e: Exception) -> bool:
    from botocore.exceptions import ClientError

    if not isinstance(e, ClientError):
        return False
    code = str(e.response.get("Error", {}).get("Code", ""))
    return code in ("NoSuchKey", "404", "NotFound")


class RemoteModel:
    def __init__(self, client: S3Client, location: StoreLocation, model: str) -> None:
        self.client = client
        self.location = location
        self.model = check_model_name(model)

    def uri(self, key: str = "") -> str:
        return f"s3://{self.location.bucket}/{key or self.location.model_prefix(self.model)}"

    # -- small objects ---------------------------------------------------------------------------

    def _get_small(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        from botocore.exceptions import ClientError

        with translated(f"reading {self.uri(key)}"):
            try:
                obj = self.client.get_object(Bucket=self.location.bucket, Key=key)
            except ClientError as e:
                if _is_missing(e):
                    return None
                raise
            body = obj["Body"]
            try:
                data = b"".join(paced.chunks(body, SMALL_OBJECT_LIMIT, self.uri(key),
                                             time.monotonic() + SMALL_OBJECT_DEADLINE, chunk=SMALL_OBJECT_LIMIT + 1))
            finally:
                body.close()
        if len(data) > SMALL_OBJECT_LIMIT:
            raise StoreError(f"{self.uri(key)} is larger than {SMALL_OBJECT_LIMIT} bytes")
        return data

    def _put_small(self, key: str, data: bytes, content_type: str, *, only_if_absent: bool = False) -> None:
        """With `only_if_absent`, a conditional write (If-None-Match: *): an existing object makes
        it fail with StoreError instead of being replaced."""
        from botocore.exceptions import ClientError

        with translated(f"writing {self.uri(key)}"):
            try:
                if only_if_absent:
                    self.client.put_object(Bucket=self.location.bucket, Key=key, Body=data,
                                           ContentType=content_type, IfNoneMatch="*")
                else:
                    self.client.put_object(Bucket=self.location.bucket, Key=key, Body=data,
                                           ContentType=content_type)
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise StoreError(f"{self.uri(key)} already exists") from None
                raise

    # -- versions ----------------------------------------------------------------------------------

    def _objects_by_version(self) -> dict[int, set[str]]:
        """Every `<version>/<name>` object under the model, as version -> names."""
        prefix = self.location.model_prefix(self.model)
        found: dict[int, set[str]] = {}
        with translated(f"listing {self.uri()}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.location.bucket,
                                                                          Prefix=prefix)
            for page in pages:
                for obj in page.get("Contents", []):
                    rest = obj["Key"][len(prefix):].split("/")
                    # One spelling per version, as on disk: `007/` is no version (common/versions.py).
                    version = version_number(rest[0]) if len(rest) == 2 else None
                    if version is not None:
                        found.setdefault(version, set()).add(rest[1])
        return found

    def published_versions(self) -> list[int]:
        """Versions whose marker exists, ascending."""
        return sorted(v for v, names in self._objects_by_version().items() if MARKER in names)

    def used_versions(self) -> list[int]:
        """Version numbers holding any object: published, being published, or abandoned."""
        return sorted(self._objects_by_version())

    def claim(self, version: int, publisher: str) -> None:
        """Takes `version` for one publisher; StoreError if anyone (even a crashed one) has it."""
        key = self.location.claim_key(self.model, version)
        data = json.dumps({"publisher": publisher, "started_at": now()}).encode() + b"\n"
        try:
            self._put_small(key, data, "application/json", only_if_absent=True)
        except StoreUnreachable:
            raise
        except StoreError:
            raise StoreError(f"{self.uri(self.location.version_prefix(self.model, version))} is taken by another "
                             "publisher (it holds an UPLOADING claim); train again for the next number") from None

    def marker(self, version: int) -> Marker | None:
        key = self.location.marker_key(self.model, version)
        data = self._get_small(key)
        if data is None:
            return None
        try:
            raw = json.loads(data)
            marker = Marker(int(raw["version"]), str(raw["manifest_sha256"]), int(raw["manifest_bytes"]),
                            str(raw.get("published_at", "")))
        except (ValueError, KeyError, TypeError) as e:
            raise StoreError(f"{self.uri(key)} is not a valid marker: {e!r}") from None
        if raw.get("format") != MARKER_FORMAT or raw.get("model") != self.model or marker.version != version:
            raise StoreError(f"{self.uri(key)} is a marker for {raw.get('model')!r} version {raw.get('version')!r}"
                             f" (format {raw.get('format')!r}), not {self.model!r} version {version}")
        if len(marker.manifest_sha256) != 64 or marker.manifest_bytes <= 0:
            raise StoreError(f"{self.uri(key)} names no valid manifest checksum")
        return marker

    def write_marker(self, marker: Marker) -> None:
        key = self.location.marker_key(self.model, marker.version)
        data = json.dumps(marker.to_json(self.model), sort_keys=True).encode() + b"\n"
        self._put_small(key, data, "application/json", only_if_absent=True)

    # -- the pointer -------------------------------------------------------------------------------

    def pointer(self) -> int | None:
        """The version CURRENT names, or None when there is no pointer."""
        key = self.location.pointer_key(self.model)
        data = self._get_small(key)
        if data is None:
            return None
        text = data.decode("utf-8", errors="replace").strip()
        version = version_number(text)
        if version is None:
            raise StoreError(f"{self.uri(key)} holds {text[:40]!r}, not a version number (ASCII digits, no leading "
                             "zero)")
        return version

    def write_pointer(self, version: int) -> None:
        """Points replicas at `version`, which must be published (rollback is the same call)."""
        if self.marker(version) is None:
            raise StoreError(f"{self.uri(self.location.version_prefix(self.model, version))} is not published "
                             f"(no {MARKER} marker); the pointer was not changed")
        self._put_small(self.location.pointer_key(self.model), f"{version}\n".encode(), "text/plain")

    def target(self) -> int | None:
        """What a replica should serve: the pointer, else the newest published version."""
        pointed = self.pointer()
        if pointed is not None:
            return pointed
        versions = self.published_versions()
        return versions[-1] if versions else None
