#!/usr/bin/env bash
# CI smoke load test: a small model (2,000 users x 1,000 items), a few seconds of ghz per RPC
# type (Recommend, Similar, BatchRecommend) and a couple of reloads under load. Exits non-zero
# on any non-OK status code. About 20-40 s once ghz is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash loadtest/run.sh --smoke --time-limit "${SMOKE_TIME_LIMIT:-240}" "$@"
