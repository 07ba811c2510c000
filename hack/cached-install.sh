#!/usr/bin/env bash
# hack/cached-install.sh NAME PKG@VERSION ESTIMATE
#
# Builds a Go command with `go install PKG@VERSION` from the Go module proxy
# (no prebuilt binary can be downloaded here), once per machine, into the
# per-user cache ${MAILTRACE_CACHE:-${XDG_CACHE_HOME:-~/.cache}/mailtrace}/NAME-VERSION
# (as setup-envtest keeps its binaries), and links bin/NAME-VERSION of the
# checkout to it, so a fresh clone builds nothing again. Prints the linked
# path on stdout; progress (with ESTIMATE, how long a cold build takes) on stderr.
# hack/minio.sh, hack/golangci-lint.sh and hack/dupl.sh are its callers.
set -euo pipefail

name="$1" pkg="$2" estimate="$3"
version="${pkg##*@}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${MAILTRACE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mailtrace}"
dest="$cache/${name}-${version}"
link="$root/bin/${name}-${version}"

if [[ ! -x "$link" ]]; then
  mkdir -p "$cache"
  # One build per machine at a time: a second caller (another clone, a
  # parallel make) waits for the build under way and then finds its result.
  exec 9>"$dest.lock"
  if ! flock -n 9; then
    echo ">> waiting for another build of ${name} ${version}" >&2
    flock 9
  fi
  if [[ ! -x "$dest" ]]; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    echo ">> building ${name} ${version} from the Go module proxy (${estimate}, once per machine)" >&2
    GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod GOBIN="$work" go install -trimpath -ldflags=-s "$pkg" >&2
    mv "$work/$(basename "${pkg%@*}")" "$dest.tmp"
    mv "$dest.tmp" "$dest"
  fi
  mkdir -p "$root/bin"
  if [[ ! -e "$link" || -L "$link" ]]; then ln -sfn "$dest" "$link"; fi
fi
echo "$link"
