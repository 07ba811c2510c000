#!/usr/bin/env bash
# Builds dupl (github.com/mibk/dupl, the duplicate-code finder behind
# golangci-lint's dupl, which there compares files of one package only),
# pinned, once per machine (hack/cached-install.sh). Prints its path.
set -euo pipefail
DUPL_VERSION="${DUPL_VERSION:-v1.1.0}"
exec "$(dirname "$0")/cached-install.sh" dupl "github.com/mibk/dupl@${DUPL_VERSION}" "a few seconds"
