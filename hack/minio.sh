#!/usr/bin/env bash
# Builds a MinIO server for the object-store tests (internal/testutil/miniotest)
# and the demo, once per machine (hack/cached-install.sh). Prints its path.
set -euo pipefail
# Pinned: a recent MinIO pseudo-version that builds with Go 1.26.
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
exec "$(dirname "$0")/cached-install.sh" minio "github.com/minio/minio@${MINIO_VERSION}" "about 6 minutes cold on 2 idle cores"
