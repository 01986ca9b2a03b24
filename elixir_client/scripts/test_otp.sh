#!/usr/bin/env bash
# Runs the ExUnit tests tagged :otp (UroReco.Sidecar, UroReco.SidecarPool and the
# modules they use) with a plain Elixir >= 1.14 and no hex packages: the pure-OTP
# modules are compiled with elixirc into a temporary directory and the test files
# are loaded with `elixir -r`.
#
# The sidecar's interpreter comes from RECO_SIDECAR_PYTHON (default python3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT

cd "$here"
elixirc --warnings-as-errors -o "$build" \
  lib/uro_reco/backoff.ex \
  lib/uro_reco/error.ex \
  lib/uro_reco/options.ex \
  lib/uro_reco/jobs.ex \
  lib/uro_reco/sidecar.ex \
  lib/uro_reco/sidecar_pool.ex \
  lib/uro_reco/training.ex \
  lib/uro_reco/sidecar/*.ex \
  test/support/sidecar_helpers.ex

exec elixir -pa "$build" -e "ExUnit.start(autorun: true)" -r "test/otp/*_test.exs"
