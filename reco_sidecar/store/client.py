"""The S3 client: boto3 with credentials from the standard AWS chain (environment, shared
config and credentials files, web identity, container and instance metadata) and an
optional endpoint URL for S3-compatible stores (SeaweedFS, Ceph, R2, Tigris, MinIO)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

# Bounded waits: a store that stops answering must fail a download, not hang it.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
ATTEMPTS = 3


def make_client(endpoint_url: str | None) -> S3Client:
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        retries={"mode": "standard", "total_max_attempts": ATTEMPTS},
        # S3-compatible stores rarely have per-bucket DNS names.
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url or None, config=config)
