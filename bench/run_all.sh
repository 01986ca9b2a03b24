#!/usr/bin/env bash
# Every benchmark under bench/ (except bench_scoring.py, run on its own) on the benchmark model
# that loadtest/ builds and caches (200k users x 100k items x 64 factors), one after another,
# each with a hard time bound. Results: bench/results/<name>.json.
#
#   bench/run_all.sh [--small]
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
GHZ="$(timeout 660 python -m harness.gotools ghz)" && export GHZ  # found or installed by the harness
status=0
for bench in memory startup batch_throughput batching_gain similar_ann serving_overhead; do
  echo "bench: $bench" >&2
  timeout --kill-after=30 1500 python -m "bench.$bench" "$@" || status=$?
done
python - <<'PY'
import json, pathlib
for p in sorted(pathlib.Path("bench/results").glob("*.json")):
    r = json.loads(p.read_text())
    print(p.name, "commit", r.get("git", {}).get("commit", "")[:10], "failures", r.get("failures"))
PY
exit "$status"
