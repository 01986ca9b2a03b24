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
. "$(dirname "${BASH_SOURCE[0]}")/lib/go_build_cache.sh"

JAEGER_VERSION="v1.75.0"

build_jaeger() {  # WORKDIR OUTPUT
  cat > "$1/go.mod" <<GOMOD
module reco-sidecar/jaeger-build

go 1.24
GOMOD
  go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION"
  go build -o "$2" github.com/jaegertracing/jaeger/cmd/jaeger
}

go_build_cached jaeger "$JAEGER_VERSION" \
  "${RECO_JAEGER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/reco-sidecar/jaeger}" build_jaeger "${1:-}"
