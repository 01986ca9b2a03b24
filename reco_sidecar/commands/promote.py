"""`reco-sidecar promote`: point a model store's CURRENT at a published version. Every
replica following the store switches to it within its watch interval; pointing back at an
older version is the rollback."""

from __future__ import annotations

import argparse
import os

from reco_sidecar.common.errors import InvalidArgument


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("promote", help="point the model store's CURRENT at a published version (rollback too)")
    p.add_argument("--model-store", default=os.environ.get("RECO_MODEL_STORE"),
                   help="s3://BUCKET[/PREFIX] (env RECO_MODEL_STORE)")
    p.add_argument("--s3-endpoint-url", default=os.environ.get("RECO_S3_ENDPOINT_URL"),
                   help="endpoint of an S3-compatible store (env RECO_S3_ENDPOINT_URL; unset: AWS S3)")
    p.add_argument("--name", required=True, help="model name")
    p.add_argument("--version", required=True, type=int, help="a published version number")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from reco_sidecar.store import location
    from reco_sidecar.store.client import make_client
    from reco_sidecar.store.errors import StoreError
    from reco_sidecar.store.remote import RemoteModel

    if not args.model_store:
        raise InvalidArgument("--model-store (or RECO_MODEL_STORE) is needed", field="model_store")
    try:
        remote = RemoteModel(make_client(args.s3_endpoint_url), location.parse(args.model_store), args.name)
    except ValueError as e:
        raise InvalidArgument(str(e), field="model_store") from None
    try:
        previous = remote.pointer()
        remote.write_pointer(args.version)
    except StoreError as e:
        raise InvalidArgument(str(e), field="version") from None
    print(f"{remote.uri(remote.location.pointer_key(remote.model))}: {previous or '-'} -> {args.version}")
    return 0
