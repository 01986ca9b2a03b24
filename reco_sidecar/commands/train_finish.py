"""What every training engine does with a published version: report its metrics, name it on
stdout, publish it to the model store and ask a sidecar to reload it."""

from __future__ import annotations

import argparse
import sys

from reco_sidecar.commands import store_publish
from reco_sidecar.store.remote import RemoteModel
from reco_sidecar.training import pipeline, report


def finish(args: argparse.Namespace, published: pipeline.Published, remote: RemoteModel | None,
           token: str | None) -> int:
    if published.metrics:
        # stdout carries only the published path, for scripts.
        print(report.table(published.metrics, args.k), file=sys.stderr)
    # Printed before the reload: if that fails, the version is still published and named.
    print(published.path, flush=True)
    store_publish.publish(remote, published.path, args.promote)
    if args.reload:
        from reco_sidecar.training import reload

        reload.request_reload(args.reload, args.name, published.version, timeout=args.reload_timeout,
                              token=token)
    return 0
