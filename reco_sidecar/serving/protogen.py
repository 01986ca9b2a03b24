"""Regenerates the committed Python stubs from protos/ (needs grpcio-tools).

The stubs are committed so that installing the sidecar needs no code generator;
tests/test_protogen.py fails when they are stale. Beside them goes reco.binpb, the
proto's descriptor with its comments (protoc's source info, which the stubs leave out),
for server reflection to serve.
Usage: python -m reco_sidecar.serving.protogen [--check]
"""

from __future__ import annotations

import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "protos"
OUT_DIR = ROOT / "reco_sidecar" / "gen"
PROTO = "reco/v1/reco.proto"
DESCRIPTOR_SET = "reco.binpb"
# protoc emits imports relative to the proto root; our stubs live inside the package.
_IMPORT_FIX = ("from reco.v1 import", "from reco_sidecar.gen.reco.v1 import")


def generate(out_dir: pathlib.Path) -> list[pathlib.Path]:
    from grpc_tools import protoc  # type: ignore[import-untyped]

    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        "--include_source_info",
        f"--descriptor_set_out={out_dir / 'reco' / 'v1' / DESCRIPTOR_SET}",
        str(PROTO_DIR / PROTO),
    ]
    (out_dir / "reco" / "v1").mkdir(parents=True, exist_ok=True)
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed")
    descriptor_set = out_dir / "reco" / "v1" / DESCRIPTOR_SET
    files = sorted((out_dir / "reco" / "v1").glob("reco_pb2*"))
    for f in files:
        f.write_text(f.read_text().replace(*_IMPORT_FIX))
    for pkg in (out_dir, out_dir / "reco", out_dir / "reco" / "v1"):
        (pkg / "__init__.py").touch()
    return [*files, descriptor_set]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--check" not in argv:
        generate(OUT_DIR)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(pathlib.Path(tmp))
        stale = [f.name for f in fresh if (OUT_DIR / "reco" / "v1" / f.name).read_bytes() != f.read_bytes()]
    if stale:
        print(f"stale stubs: {stale}; run python -m reco_sidecar.serving.protogen", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
