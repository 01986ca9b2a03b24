"""`--model-store` for the commands that write a version (`train`, `import-librecommender`):
the version is written locally first, numbered above every version the store already has,
then published (files, manifest, marker last) and, with `--promote`, made CURRENT."""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

from reco_sidecar.common.errors import InvalidArgument
from reco_sidecar.store import location
from reco_sidecar.store.remote import RemoteModel


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model store")
    g.add_argument("--model-store", default=os.environ.get("RECO_MODEL_STORE"),
                   help="s3://BUCKET[/PREFIX]: also publish the version there (env RECO_MODEL_STORE); "
                   "credentials come from the standard AWS chain")
    g.add_argument("--s3-endpoint-url", default=os.environ.get("RECO_S3_ENDPOINT_URL"),
                   help="endpoint of an S3-compatible store (env RECO_S3_ENDPOINT_URL; unset: AWS S3)")
    g.add_argument("--promote", action="store_true",
                   help="after publishing, point the store's CURRENT at the version (replicas switch to it)")


def remote_for(args: argparse.Namespace) -> RemoteModel | None:
    """The store model to publish to, checked before any work is done; None without --model-store."""
    if not args.model_store:
        if args.promote:
            raise InvalidArgument("--promote needs --model-store", field="promote")
        return None
    from reco_sidecar.store.client import make_client

    try:
        where = location.parse(args.model_store)
        location.check_model_name(args.name)
    except ValueError as e:
        raise InvalidArgument(str(e), field="model_store") from None
    return RemoteModel(make_client(args.s3_endpoint_url), where, args.name)


def first_version(remote: RemoteModel | None) -> int:
    """The smallest local version number that the store does not have yet (1 without a store)."""
    if remote is None:
        return 1
    from reco_sidecar.store.errors import StoreError

    try:
        used = remote.used_versions()
    except StoreError as e:
        raise InvalidArgument(f"cannot list the model store: {e}", field="model_store") from None
    return (used[-1] + 1) if used else 1


def publish(remote: RemoteModel | None, version_dir: pathlib.Path, promote: bool) -> None:
    if remote is None:
        return
    from reco_sidecar.store import publish as store_publish
    from reco_sidecar.store.errors import StoreError

    try:
        version = store_publish.publish(remote, version_dir, promote=promote)
    except StoreError as e:
        raise InvalidArgument(f"{version_dir} was written but not published: {e}", field="model_store") from None
    print(remote.uri(remote.location.version_prefix(remote.model, version)), file=sys.stderr)
