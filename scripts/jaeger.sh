#!/usr/bin/env bash
# Builds Jaeger's all-in-one `jaeger` binary (the OTLP collector and trace store the tracing
# tests send spans to and query) once, into a cache outside the repository, and prints its path.
#
# Jaeger is a Go module with a long dependency list; `go get -tool` inside a throwaway module
# resolves it at the pinned release and `go build` builds the one command (several minutes on
# 2 cores the first time; the Go module and build caches make later builds fast).
#
# `--cached-only`: print the path if the binary is already built, else exit 1 (tests use
# this to find it without starting a build).
#
# Environment: RECO_JAEGER_CACHE (default ~/.cache/reco-sidecar/jaeger) - where the binary is
# kept; the version is part of the file name, so changing it rebuilds.
set -euo pipefail

JAEGER_VERSION="v1.75.0"
cache_dir="${RECO_JAEGER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/reco-sidecar/jaeger}"
binary="$cache_dir/jaeger-$JAEGER_VERSION"

if [ -x "$binary" ]; then
  echo "$binary"
  exit 0
fi
if [ "${1:-}" = "--cached-only" ]; then
  exit 1
fi
command -v go >/dev/null || { echo "jaeger.sh: go is not installed" >&2; exit 1; }

mkdir -p "$cache_dir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cat > "$work/go.mod" <<GOMOD
module reco-sidecar/jaeger-build

go 1.24
GOMOD

echo "jaeger.sh: building jaeger $JAEGER_VERSION (several minutes)" >&2
(
  cd "$work"
  go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION" >&2
  go build -o "$work/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger >&2
)
# Rename into place last: a concurrent run never sees a half-written binary.
mv "$work/jaeger" "$binary.tmp.$$"
mv "$binary.tmp.$$" "$binary"
echo "$binary"
