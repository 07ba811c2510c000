#!/usr/bin/env bash
# Builds dupl (github.com/mibk/dupl, the duplicate-code finder behind
# golangci-lint's dupl, which there compares within one package only) from the
# Go module proxy (no prebuilt binary can be
# downloaded here), pinned, once per machine in the per-user cache
# (${MAILTRACE_CACHE:-${XDG_CACHE_HOME:-~/.cache}/mailtrace}/dupl-<version>),
# linked from bin/. Prints the binary path on stdout (progress on stderr).
set -euo pipefail

DUPL_VERSION="${DUPL_VERSION:-v1.1.0}"

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${MAILTRACE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mailtrace}"
dest="$cache/dupl-${DUPL_VERSION}"
link="$root/bin/dupl-${DUPL_VERSION}"
link_checkout() {
  mkdir -p "$root/bin"
  if [[ ! -e "$link" || -L "$link" ]]; then ln -sfn "$dest" "$link"; fi
}
if [[ -x "$link" ]]; then
  echo "$link"
  exit 0
fi
if [[ ! -x "$dest" ]]; then
  mkdir -p "$cache"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  echo ">> building dupl ${DUPL_VERSION} from the Go module proxy (a few seconds on 2 idle cores, once per machine)" >&2
  GOTOOLCHAIN=local GOFLAGS=-mod=mod GOBIN="$work" go install -trimpath "github.com/mibk/dupl@${DUPL_VERSION}" >&2
  mv "$work/dupl" "$dest.tmp"
  mv "$dest.tmp" "$dest"
fi
link_checkout
echo "$link"
