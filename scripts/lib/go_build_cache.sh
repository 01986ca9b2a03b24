# Sourced by the scripts that build a Go tool once into a cache outside the repository
# (scripts/seaweedfs.sh, scripts/jaeger.sh): the cache lookup, `--cached-only`, a throwaway
# module directory and the atomic rename live here once; each script says only how its
# tool is built.
#
#   go_build_cached NAME VERSION CACHE_DIR BUILD_FUNCTION [--cached-only]
#
# Prints CACHE_DIR/NAME-VERSION if that binary exists (the version is part of the file name,
# so changing it rebuilds). Else, with `--cached-only`, exits 1 (tests use this to find the
# binary without starting a build); otherwise runs BUILD_FUNCTION WORKDIR OUTPUT in a fresh
# temporary directory (it must write the binary to OUTPUT, and its output goes to stderr),
# moves the binary into place and prints its path.

go_build_cached() {
  local name="$1" version="$2" cache_dir="$3" build="$4" mode="${5:-}"
  local binary="$cache_dir/$name-$version"

  if [ -x "$binary" ]; then
    echo "$binary"
    return 0
  fi
  if [ "$mode" = "--cached-only" ]; then
    exit 1
  fi
  command -v go >/dev/null || { echo "$name: go is not installed" >&2; exit 1; }

  mkdir -p "$cache_dir"
  local work
  work="$(mktemp -d)"
  # The temporary module goes whatever happens; the trap runs after this function returns.
  trap 'rm -rf "'"$work"'"' EXIT

  echo "$name: building $name $version (several minutes)" >&2
  # A subshell under `set -e`: the first failing step of the build fails the script.
  (set -e; cd "$work"; "$build" "$work" "$work/$name") >&2
  # Rename into place last: a concurrent run never sees a half-written binary.
  mv "$work/$name" "$binary.tmp.$$"
  mv "$binary.tmp.$$" "$binary"
  echo "$binary"
}
