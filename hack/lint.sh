#!/usr/bin/env bash
# `make lint`: gofmt, go vet, and go.mod tidy.
set -euo pipefail
cd "$(dirname "$0")/.."
GO="${GO:-go}"

out=$(gofmt -l $(git ls-files '*.go'))
if [[ -n "$out" ]]; then
  echo "gofmt needed:" >&2
  echo "$out" >&2
  exit 1
fi

"$GO" vet ./...
