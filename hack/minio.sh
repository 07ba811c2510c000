#!/usr/bin/env bash
# Builds a MinIO server from the Go module proxy for the object-store tests
# (internal/testutil/miniotest), because no prebuilt binary can be downloaded
# here. The result is cached in bin/minio-<version> (git-ignored); nothing is
# rebuilt when present. Prints the binary path on stdout (progress on stderr).
set -euo pipefail

# Pinned: a recent MinIO pseudo-version that builds with Go 1.26.
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"

root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/bin/minio-${MINIO_VERSION}"
if [[ -x "$dest" ]]; then
  echo "$dest"
  exit 0
fi
mkdir -p "$root/bin"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

echo ">> building MinIO ${MINIO_VERSION} from the Go module proxy (about 4 minutes, once)" >&2
GOBIN="$work" go install -trimpath -ldflags=-s "github.com/minio/minio@${MINIO_VERSION}" >&2
mv "$work/minio" "$dest.tmp"
mv "$dest.tmp" "$dest"
echo "$dest"
