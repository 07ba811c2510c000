#!/usr/bin/env bash
# Builds golangci-lint, pinned, once per machine (hack/cached-install.sh). Prints its path.
set -euo pipefail
GOLANGCI_LINT_VERSION="${GOLANGCI_LINT_VERSION:-v2.15.0}"
exec "$(dirname "$0")/cached-install.sh" golangci-lint "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@${GOLANGCI_LINT_VERSION}" "about 4 minutes cold on 2 idle cores"
