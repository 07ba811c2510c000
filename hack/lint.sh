#!/usr/bin/env bash
# `make lint`: gofmt, go.mod tidy, golangci-lint (.golangci.yml: go vet,
# ineffassign, and the import rules: no controller imports another, the
# kubectl plugin imports no store and no controller), and a duplication
# check of the controller plumbing across packages.
set -euo pipefail
cd "$(dirname "$0")/.."
GO="${GO:-go}"

out=$(gofmt -l $(git ls-files '*.go'))
if [[ -n "$out" ]]; then
  echo "gofmt needed:" >&2
  echo "$out" >&2
  exit 1
fi

if ! "$GO" mod tidy -diff >/dev/null 2>&1; then
  echo "go.mod or go.sum is not tidy: run go mod tidy" >&2
  "$GO" mod tidy -diff >&2 || true
  exit 1
fi

# --allow-parallel-runners: by default a second golangci-lint on the machine
# (another clone's make test, an editor) waits for the first one's lock,
# silently, for as long as it runs; its cache is safe to share.
"$(hack/golangci-lint.sh)" run --allow-parallel-runners ./...

# The controllers' shared plumbing (status patch, conditions, back-off,
# defaults) lives once in internal/controllerkit: a copied block of 50 tokens
# or more between any two of these files fails. golangci-lint's dupl only
# compares files of one package, so this runs dupl itself over all of them.
clones=$(git ls-files 'controllers/*.go' 'internal/controllerkit/*.go' 'internal/reportstore/*.go' | grep -v '_test\.go$' |
  "$(hack/dupl.sh)" -files -t 50)
if ! grep -q 'Found total 0 clone groups' <<<"$clones"; then
  echo "duplicated controller code (move it to internal/controllerkit):" >&2
  echo "$clones" >&2
  exit 1
fi
