#!/usr/bin/env bash
# Full load test against the benchmark model (200k users x 100k items x 64 factors):
# ghz fixed-rate steps and find-the-maximum runs for Recommend, Similar and BatchRecommend,
# the in-process ceiling, and a reload storm under load. Installs ghz when missing.
#
#   loadtest/run.sh [--time-limit SECONDS] [any option of python -m loadtest.run --help]
#
# Results: loadtest/results/<UTC stamp>/ (summary.json, report.md, latency_vs_throughput.png,
# one ghz JSON per run); loadtest/results/latest points at the newest.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
LIMIT=2700
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  [[ "${args[$i]}" == "--time-limit" ]] && LIMIT="${args[$((i + 1))]}"
done
# ghz: found or installed (pinned version) by the harness.
GHZ="$(timeout 660 python -m harness.gotools ghz)" || { echo "loadtest: ghz is missing and go is not installed" >&2; exit 2; }
export GHZ
# The driver kills the sidecar's process group itself; `timeout` is the outer bound (the driver
# gets SIGTERM first, which it turns into cleanup, then SIGKILL 30 s later).
exec timeout --kill-after=30 "$((${LIMIT%.*} + 60))" python -m loadtest.run "$@"
