#!/usr/bin/env bash
# Builds a MinIO server from the Go module proxy for the object-store tests
# (internal/testutil/miniotest), because no prebuilt binary can be downloaded
# here. The result is cached once per machine in the per-user cache
# (${MAILTRACE_CACHE:-${XDG_CACHE_HOME:-~/.cache}/mailtrace}/minio-<version>), and
# bin/minio-<version> of the checkout links to it; nothing is rebuilt when
# present. Prints the binary path on stdout (progress on stderr).
set -euo pipefail

# Pinned: a recent MinIO pseudo-version that builds with Go 1.26.
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${MAILTRACE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mailtrace}"
dest="$cache/minio-${MINIO_VERSION}"
link="$root/bin/minio-${MINIO_VERSION}"
link_checkout() {
  mkdir -p "$root/bin"
  if [[ ! -e "$link" || -L "$link" ]]; then ln -sfn "$dest" "$link"; fi
}
if [[ -x "$link" ]]; then
  echo "$link"
  exit 0
fi
if [[ -x "$dest" ]]; then
  link_checkout
  echo "$link"
  exit 0
fi
mkdir -p "$cache"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

echo ">> building MinIO ${MINIO_VERSION} from the Go module proxy (about 6 minutes cold on 2 idle cores, once per machine)" >&2
GOBIN="$work" go install -trimpath -ldflags=-s "github.com/minio/minio@${MINIO_VERSION}" >&2
mv "$work/minio" "$dest.tmp"
mv "$dest.tmp" "$dest"
link_checkout
echo "$link"
