"""The Elixir stubs in elixir_client/ must match reco.proto exactly.

`elixir_client/lib/uro_reco/v1/reco.pb.ex` is in the form protoc-gen-elixir 0.17
emits. These tests parse that text and compare every message, field, enum value
and rpc with the descriptor the Python stubs were generated from, so a change to
the proto that is not regenerated for Elixir fails here. A second test parses
every Elixir source file of the client with a real Elixir.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, FileDescriptor

from reco_sidecar.gen.reco.v1 import reco_pb2
from tests.support.requires import require

ROOT = Path(__file__).resolve().parents[1]
CLIENT = ROOT / "elixir_client"
STUBS = CLIENT / "lib" / "uro_reco" / "v1" / "reco.pb.ex"
GEN_VERSION = '"0.17.0"'

SCALARS = {
    FieldDescriptor.TYPE_DOUBLE: ":double",
    FieldDescriptor.TYPE_FLOAT: ":float",
    FieldDescriptor.TYPE_INT64: ":int64",
    FieldDescriptor.TYPE_UINT64: ":uint64",
    FieldDescriptor.TYPE_INT32: ":int32",
    FieldDescriptor.TYPE_FIXED64: ":fixed64",
    FieldDescriptor.TYPE_FIXED32: ":fixed32",
    FieldDescriptor.TYPE_BOOL: ":bool",
    FieldDescriptor.TYPE_STRING: ":string",
    FieldDescriptor.TYPE_BYTES: ":bytes",
    FieldDescriptor.TYPE_UINT32: ":uint32",
    FieldDescriptor.TYPE_SFIXED32: ":sfixed32",
    FieldDescriptor.TYPE_SFIXED64: ":sfixed64",
    FieldDescriptor.TYPE_SINT32: ":sint32",
    FieldDescriptor.TYPE_SINT64: ":sint64",
}


# --- parsing the generated Elixir -------------------------------------------------------------

@dataclass
class Module:
    name: str
    use: str = ""
    use_opts: dict[str, str] = field(default_factory=dict)
    fields: list[tuple[str, int, dict[str, str]]] = field(default_factory=list)
    rpcs: list[tuple[str, str, str]] = field(default_factory=list)


MODULE_RE = re.compile(r"^defmodule (\S+) do\n(.*?)^end$", re.M | re.S)
OPT_RE = re.compile(r'(\w+): ("(?:[^"\\]|\\.)*"|[^,\s]+)')
FIELD_RE = re.compile(r"^field :(\w+), (\d+)(?:, (.*))?$")
RPC_RE = re.compile(r"^rpc :(\w+), ([^,]+), ([^,]+)$")
USE_RE = re.compile(r"^use ([\w.]+),\s*(.*)$")


def _statements(body: str) -> list[str]:
    """Joins the lines of each statement (a line indented by two spaces starts one)."""
    statements: list[str] = []
    for line in body.splitlines():
        if not line.strip():
            continue
        if line.startswith("  ") and not line.startswith("   "):
            statements.append(line.strip())
        elif statements:
            statements[-1] += " " + line.strip()
    return statements


def _options(text: str) -> dict[str, str]:
    return dict(OPT_RE.findall(text or ""))


def parse_pb_ex(text: str) -> tuple[dict[str, Module], list[str]]:
    """Returns the modules of a .pb.ex file and the statements it could not read."""
    modules: dict[str, Module] = {}
    unknown: list[str] = []
    for name, body in MODULE_RE.findall(text):
        module = Module(name)
        for statement in _statements(body):
            if statement == "@moduledoc false":
                continue
            if m := USE_RE.match(statement):
                module.use, module.use_opts = m.group(1), _options(m.group(2))
            elif m := FIELD_RE.match(statement):
                module.fields.append((m.group(1), int(m.group(2)), _options(m.group(3))))
            elif m := RPC_RE.match(statement):
                module.rpcs.append((m.group(1), m.group(2).strip(), m.group(3).strip()))
            else:
                unknown.append(f"{name}: {statement}")
        if name in modules:
            unknown.append(f"{name}: defined twice")
        modules[name] = module
    return modules, unknown


# --- what protoc-gen-elixir derives from the descriptor ---------------------------------------

def module_name(full_name: str, package: str) -> str:
    """reco.v1.GetModelStatusResponse.MetricsEntry -> Reco.V1.GetModelStatusResponse.MetricsEntry"""
    prefix = ".".join(part[:1].upper() + part[1:] for part in package.split("."))
    return prefix + full_name[len(package):]


def expected_field_opts(f: FieldDescriptor, package: str) -> dict[str, str]:
    opts: dict[str, str] = {}
    if f.is_repeated:
        opts["repeated"] = "true"
    if f.type == FieldDescriptor.TYPE_ENUM:
        assert f.enum_type is not None
        opts["type"] = module_name(f.enum_type.full_name, package)
    elif f.type == FieldDescriptor.TYPE_MESSAGE:
        assert f.message_type is not None
        opts["type"] = module_name(f.message_type.full_name, package)
    else:
        opts["type"] = SCALARS[f.type]
    if f.json_name != f.name:
        opts["json_name"] = f'"{f.json_name}"'
    if f.type == FieldDescriptor.TYPE_ENUM:
        opts["enum"] = "true"
    if f.type == FieldDescriptor.TYPE_MESSAGE and f.message_type is not None and f.message_type.GetOptions().map_entry:
        opts["map"] = "true"
    return opts


def _all_messages(fd: FileDescriptor) -> list[Descriptor]:
    found: list[Descriptor] = []

    def walk(message: Descriptor) -> None:
        found.append(message)
        for nested in message.nested_types:
            walk(nested)

    for message in fd.message_types_by_name.values():
        walk(message)
    return found


def _all_enums(fd: FileDescriptor) -> list[EnumDescriptor]:
    enums = list(fd.enum_types_by_name.values())
    for message in _all_messages(fd):
        enums.extend(message.enum_types)
    return enums


def check(text: str, fd: FileDescriptor) -> list[str]:
    """Every difference between the .pb.ex text and the descriptor, as readable lines."""
    pkg = fd.package
    modules, unknown = parse_pb_ex(text)
    errors = [f"unreadable statement {s}" for s in unknown]
    expected: set[str] = set()

    def module(full_name: str, suffix: str = "") -> Module | None:
        name = module_name(full_name, pkg) + suffix
        expected.add(name)
        if name not in modules:
            errors.append(f"missing module {name}")
        return modules.get(name)

    for enum in _all_enums(fd):
        if (mod := module(enum.full_name)) is None:
            continue
        want_use = {"enum": "true", "full_name": f'"{enum.full_name}"',
                    "protoc_gen_elixir_version": GEN_VERSION, "syntax": ":proto3"}
        if (mod.use, mod.use_opts) != ("Protobuf", want_use):
            errors.append(f"{mod.name}: use {mod.use} {mod.use_opts}, expected Protobuf {want_use}")
        want_values: list[tuple[str, int, dict[str, str]]] = [(v.name, v.number, {}) for v in enum.values]
        if mod.fields != want_values:
            errors.append(f"{mod.name}: values {mod.fields}, expected {want_values}")

    for message in _all_messages(fd):
        if (mod := module(message.full_name)) is None:
            continue
        want_use = {"full_name": f'"{message.full_name}"',
                    "protoc_gen_elixir_version": GEN_VERSION, "syntax": ":proto3"}
        if message.GetOptions().map_entry:
            want_use["map"] = "true"
        if (mod.use, mod.use_opts) != ("Protobuf", want_use):
            errors.append(f"{mod.name}: use {mod.use} {mod.use_opts}, expected Protobuf {want_use}")
        got = {name: (number, opts) for name, number, opts in mod.fields}
        if [name for name, _, _ in mod.fields] != [f.name for f in message.fields]:
            errors.append(f"{mod.name}: fields {[n for n, _, _ in mod.fields]}, "
                          f"expected {[f.name for f in message.fields]}")
        for f in message.fields:
            if f.name not in got:
                continue
            number, opts = got[f.name]
            if number != f.number:
                errors.append(f"{mod.name}.{f.name}: number {number}, expected {f.number}")
            want = expected_field_opts(f, pkg)
            if opts != want:
                errors.append(f"{mod.name}.{f.name}: options {opts}, expected {want}")

    for service in fd.services_by_name.values():
        if (mod := module(service.full_name, ".Service")) is not None:
            want_use = {"name": f'"{service.full_name}"', "protoc_gen_elixir_version": GEN_VERSION}
            if (mod.use, mod.use_opts) != ("GRPC.Service", want_use):
                errors.append(f"{mod.name}: use {mod.use} {mod.use_opts}, expected {want_use}")
            want_rpcs = []
            for method in service.methods:
                request = module_name(method.input_type.full_name, pkg)
                response = module_name(method.output_type.full_name, pkg)
                want_rpcs.append((
                    method.name,
                    f"stream({request})" if method.client_streaming else request,
                    f"stream({response})" if method.server_streaming else response,
                ))
            if mod.rpcs != want_rpcs:
                errors.append(f"{mod.name}: rpcs {mod.rpcs}, expected {want_rpcs}")
        if (stub := module(service.full_name, ".Stub")) is not None:
            want_use = {"service": module_name(service.full_name, pkg) + ".Service"}
            if (stub.use, stub.use_opts, stub.fields, stub.rpcs) != ("GRPC.Stub", want_use, [], []):
                errors.append(f"{stub.name}: expected only `use GRPC.Stub, service: {want_use['service']}`")

    errors.extend(f"unexpected module {name}" for name in sorted(set(modules) - expected))
    return errors


# --- tests --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stubs_text() -> str:
    return STUBS.read_text()


def test_stubs_match_the_proto(stubs_text: str) -> None:
    modules, _ = parse_pb_ex(stubs_text)
    # 2 enums + 30 messages + 2 map entries + service + stub: a parser that saw nothing must not pass.
    assert len(modules) == 36
    assert check(stubs_text, reco_pb2.DESCRIPTOR) == []


MUTATIONS = [
    ("field number", "field :user_id, 2, type: :string", "field :user_id, 9, type: :string"),
    ("scalar type", "field :score, 2, type: :float", "field :score, 2, type: :double"),
    ("repeated label", "field :categories, 3, repeated: true, type: :string",
     "field :categories, 3, type: :string"),
    ("enum flag", "field :source, 6, type: Reco.V1.Source, enum: true",
     "field :source, 6, type: Reco.V1.Source"),
    ("enum type reference", "field :state, 2, type: Reco.V1.ModelState",
     "field :state, 2, type: Reco.V1.Source"),
    ("message type reference", "field :filter, 4, type: Reco.V1.Filter",
     "field :filter, 4, type: Reco.V1.ScoredItem"),
    ("json_name", 'json_name: "userIds"', 'json_name: "user_ids"'),
    ("json_name left out", ', json_name: "sharedAddress"', ""),
    ("json_name where none is due", "field :rank, 3, type: :uint32",
     'field :rank, 3, type: :uint32, json_name: "Rank"'),
    ("enum value number", "field :SOURCE_ANN, 4", "field :SOURCE_ANN, 5"),
    ("enum value missing", "  field :MODEL_STATE_END, 5\n", ""),
    ("map field flag", "GetModelStatusResponse.MetricsEntry, map: true", "GetModelStatusResponse.MetricsEntry"),
    ("map entry module option", 'GetModelStatusResponse.MetricsEntry",\n    map: true,\n',
     'GetModelStatusResponse.MetricsEntry",\n'),
    ("missing field", "  field :has_item_metadata, 15, type: :bool, json_name: \"hasItemMetadata\"\n", ""),
    ("extra field", "  field :code, 1, type: :string\n",
     "  field :code, 1, type: :string\n  field :detail, 3, type: :string\n"),
    ("message full_name", 'full_name: "reco.v1.ItemError"', 'full_name: "reco.v1.ItemErr"'),
    ("message module name", "defmodule Reco.V1.WorkerInfo do", "defmodule Reco.V1.Worker do"),
    ("generator version", 'full_name: "reco.v1.Filter", protoc_gen_elixir_version: "0.17.0"',
     'full_name: "reco.v1.Filter", protoc_gen_elixir_version: "0.16.0"'),
    ("server streaming flag", "stream(Reco.V1.BatchRecommendResponse)", "Reco.V1.BatchRecommendResponse"),
    ("client streaming flag", "rpc :Reload, Reco.V1.ReloadRequest", "rpc :Reload, stream(Reco.V1.ReloadRequest)"),
    ("rpc request type", "rpc :Similar, Reco.V1.SimilarRequest", "rpc :Similar, Reco.V1.RecommendRequest"),
    ("rpc response type", "Reco.V1.GetModelStatusRequest, Reco.V1.GetModelStatusResponse",
     "Reco.V1.GetModelStatusRequest, Reco.V1.ModelVersionStatus"),
    ("rpc missing", "  rpc :Reload, Reco.V1.ReloadRequest, Reco.V1.ReloadResponse\n", ""),
    ("service name", 'name: "reco.v1.Recommender"', 'name: "reco.v1.Recommenders"'),
    ("stub service", "service: Reco.V1.Recommender.Service", "service: Reco.V1.Other.Service"),
]


@pytest.mark.parametrize(("what", "old", "new"), MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_any_drift_fails(stubs_text: str, what: str, old: str, new: str) -> None:
    assert stubs_text.count(old) == 1, f"mutation {what!r} must match exactly once"
    mutated = stubs_text.replace(old, new)
    assert check(mutated, reco_pb2.DESCRIPTOR), f"{what} drift went unnoticed"


def _elixir_sources() -> list[Path]:
    skip = {"deps", "_build", ".elixir_ls"}
    return sorted(
        p for p in CLIENT.rglob("*")
        if p.suffix in {".ex", ".exs"} and not skip.intersection(p.relative_to(CLIENT).parts)
    )


PARSE_ALL = """
failed =
  for path <- System.argv(), reduce: 0 do
    n ->
      try do
        Code.string_to_quoted!(File.read!(path), file: path)
        n
      rescue
        e ->
          IO.puts(:stderr, Exception.format(:error, e))
          n + 1
      end
  end

IO.puts("parsed #{length(System.argv())} files, #{failed} failed")
System.halt(if failed == 0, do: 0, else: 1)
"""


@pytest.mark.elixir
def test_every_elixir_file_parses() -> None:
    require(shutil.which("elixir") is not None, "elixir on PATH")
    sources = _elixir_sources()
    assert STUBS in sources and len(sources) > 10
    run = subprocess.run(["elixir", "-e", PARSE_ALL, "--", *map(str, sources)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"parsed {len(sources)} files, 0 failed" in run.stdout
