#!/usr/bin/env bash
# Runs a benchmark command against one commit exactly (default HEAD), not against whatever the
# work tree holds: the commit is exported with `git archive` to a temporary directory, the
# command runs there (the cached benchmark model of this work tree is reused), and the results
# are copied back into loadtest/results/ and bench/results/ here. The temporary tree is removed.
#
#   loadtest/at_commit.sh [REV] -- bash loadtest/run.sh
#   loadtest/at_commit.sh HEAD -- bash bench/run_all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
here="$PWD"
rev=HEAD
if [[ $# -gt 0 && "$1" != "--" ]]; then rev="$1"; shift; fi
[[ "${1:-}" == "--" ]] && shift
[[ $# -gt 0 ]] || { echo "usage: $0 [REV] -- COMMAND..." >&2; exit 2; }
commit="$(git rev-parse --verify "$rev^{commit}")"
tmp="$(mktemp -d /tmp/reco-at-commit.XXXXXX)"
cleanup() {
  mkdir -p "$here/loadtest/results" "$here/bench/results"
  if [[ -d "$tmp/loadtest/results" ]]; then
    find "$tmp/loadtest/results" -mindepth 1 -maxdepth 1 ! -name work ! -name 'latest*' \
      -exec cp -r {} "$here/loadtest/results/" \;
    for link in latest latest-smoke; do
      if [[ -L "$tmp/loadtest/results/$link" ]]; then
        ln -sfn "$here/loadtest/results/$(basename "$(readlink "$tmp/loadtest/results/$link")")" \
          "$here/loadtest/results/$link"
      fi
    done
  fi
  [[ -d "$tmp/bench/results" ]] && cp -r "$tmp/bench/results/." "$here/bench/results/"
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP  # exit runs the EXIT trap: results are copied back, the export removed
git archive "$commit" | tar -x -C "$tmp"
echo "at_commit: $commit in $tmp" >&2
# A commit with compiled parts (setup.py's extensions) runs with them built, as an install would.
if [[ -f "$tmp/setup.py" ]]; then
  (cd "$tmp" && python3 setup.py -q build_ext --inplace >/dev/null 2>&1) \
    || echo "at_commit: the extensions did not build; their pure-Python forms run" >&2
fi
export RECO_BENCH_COMMIT="$commit"
RECO_BENCH_SUBJECT="$(git log -1 --format=%s "$commit")"
export RECO_BENCH_SUBJECT
export RECO_BENCH_WORK="${RECO_BENCH_WORK:-$here/loadtest/results/work}"
cd "$tmp"
"$@"
