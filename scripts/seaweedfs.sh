#!/usr/bin/env bash
# Builds SeaweedFS's `weed` (the S3-compatible server the store tests run against) once,
# into a cache outside the repository, and prints the binary's path.
#
# `go install github.com/seaweedfs/seaweedfs/weed@<version>` is refused because SeaweedFS's
# go.mod has a `replace` directive (go-bip39 -> cosmos/go-bip39). A two-file wrapper module
# that requires SeaweedFS and repeats that replace builds it (about 5 minutes on 2 cores).
#
# `--cached-only`: print the path if the binary is already built, else exit 1 (tests use
# this to find it without starting a build).
#
# Environment: RECO_WEED_CACHE (default ~/.cache/reco-sidecar/seaweedfs) - where the binary
# is kept; the version is part of the file name, so changing it rebuilds.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/go_build_cache.sh"

SEAWEEDFS_VERSION="v0.0.0-20261109003541-7506e5f91cd6"

build_weed() {  # WORKDIR OUTPUT
  cat > "$1/go.mod" <<GOMOD
module reco-sidecar/weed-build

go 1.24

require github.com/seaweedfs/seaweedfs $SEAWEEDFS_VERSION

replace github.com/tyler-smith/go-bip39 => github.com/cosmos/go-bip39 v1.0.0
GOMOD
  # The second file: a blank import so `go mod tidy` keeps SeaweedFS's whole dependency graph.
  cat > "$1/tools.go" <<'GOSRC'
//go:build tools

package tools

import _ "github.com/seaweedfs/seaweedfs/weed"
GOSRC
  go mod tidy
  go build -o "$2" github.com/seaweedfs/seaweedfs/weed
}

go_build_cached weed "$SEAWEEDFS_VERSION" \
  "${RECO_WEED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/reco-sidecar/seaweedfs}" build_weed "${1:-}"
