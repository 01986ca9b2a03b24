"""`reco-sidecar import-librecommender`: publish a LibRecommender model as a new version."""

from __future__ import annotations

import argparse
import pathlib

from reco_sidecar.artifact.writer import write_version
from reco_sidecar.commands import store_publish
from reco_sidecar.common import logs
from reco_sidecar.common.errors import InvalidArgument

log = logs.get(__name__)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("import-librecommender",
                       help="import a LibRecommender model (model.save or libserving save_embed output)")
    p.add_argument("--model-root", type=pathlib.Path, required=True)
    p.add_argument("--name", required=True, help="model name (directory under the model root)")
    p.add_argument("--path", type=pathlib.Path,
                   help="folder given to DataInfo.save and model.save (with --model-name)")
    p.add_argument("--model-name", help="model_name given to DataInfo.save and model.save, e.g. als")
    p.add_argument("--save-embed", type=pathlib.Path, help="folder written by libserving's save_embed")
    p.add_argument("--algorithm", help="algorithm to record (default: librecommender-<model name>)")
    p.add_argument("--ann-trees", type=int, default=50)
    p.add_argument("--reload", metavar="ADDRESS", help="host:port of a running sidecar to switch to it")
    p.add_argument("--reload-timeout", type=float, default=120.0)
    p.add_argument("--reload-token-file", type=pathlib.Path,
                   help="file with a bearer token the sidecar accepts for Reload")
    store_publish.add_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from reco_sidecar.librecommender import imported, model_save, save_embed
    from reco_sidecar.training import reload

    token = reload.read_token(args.reload_token_file) if args.reload and args.reload_token_file else None
    remote = store_publish.remote_for(args)
    first_version = store_publish.first_version(remote)
    if args.save_embed is not None:
        if args.path is not None or args.model_name is not None:
            raise InvalidArgument("--save-embed cannot be combined with --path/--model-name", field="save_embed")
        model = save_embed.read(args.save_embed)
    elif args.path is not None and args.model_name:
        model = model_save.read(args.path, args.model_name)
    else:
        raise InvalidArgument("give --path DIR --model-name NAME, or --save-embed DIR", field="path")
    if args.algorithm:
        model = replace(model, algorithm=args.algorithm)
    out = write_version(args.model_root, args.name, imported.to_content(model), ann_trees=args.ann_trees,
                        first_version=first_version)
    log.info("imported", model=args.name, version=int(out.name), algorithm=model.algorithm,
             users=len(model.user_ids), items=len(model.item_ids), factors=int(model.item_vectors.shape[1]),
             form=model.source.get("form"))
    print(out, flush=True)
    store_publish.publish(remote, out, args.promote)
    if args.reload:
        reload.request_reload(args.reload, args.name, int(out.name), timeout=args.reload_timeout, token=token)
    return 0
