#!/usr/bin/env bash
# `make test`: every test, in phases, with a timing summary at the end
# (printed on failure too, so a slow or red CI run says where its time went).
#
#   deps   what the tests start and the linters, built or installed once
#          per machine (hack/envtest.sh, minio.sh, postgres.sh,
#          golangci-lint.sh, dupl.sh)
#   lint   gofmt, go mod tidy, golangci-lint with the import rules, the
#          duplication check (hack/lint.sh)
#   test   go test ./... : unit, store conformance (SQLite, PostgreSQL),
#          S3 (MinIO), envtest suites, tenancy, faults, chart, image
#   flood  the 1 GB ingest flood with its memory figures
#
# The phases run one after another: on two cores `go test` already builds
# and runs two packages at a time, and a build beside it would only compete
# for the same cores and build cache.
set -uo pipefail
cd "$(dirname "$0")/.."

GO="${GO:-go}"
declare -a names=() secs=() results=()
start_all=$(date +%s)

summary() {
  local total=$(( $(date +%s) - start_all ))
  echo
  echo "== make test: timing summary =="
  local i
  for i in "${!names[@]}"; do
    printf '  %-6s %6ss  %s\n' "${names[$i]}" "${secs[$i]}" "${results[$i]}"
  done
  printf '  %-6s %6ss\n' "total" "$total"
}
trap summary EXIT

# phase NAME CMD...: runs CMD, records its wall time and outcome; stops the
# run at the first failure.
phase() {
  local name="$1"; shift
  echo ">> [$name] $*" >&2
  local t0; t0=$(date +%s)
  "$@"
  local rc=$?
  names+=("$name"); secs+=("$(( $(date +%s) - t0 ))")
  if (( rc != 0 )); then
    results+=("FAILED (exit $rc)")
    exit "$rc"
  fi
  results+=("ok")
}

deps() {
  hack/envtest.sh >/dev/null && hack/postgres.sh && hack/minio.sh >/dev/null &&
    hack/golangci-lint.sh >/dev/null && hack/dupl.sh >/dev/null
}

run_tests() {
  KUBEBUILDER_ASSETS="$(hack/envtest.sh)" MAILTRACE_TEST_MINIO="$(hack/minio.sh)" \
    "$GO" test -count=1 -timeout 45m ./...
}

flood() {
  MAILTRACE_FLOOD_BYTES=1G "$GO" test -count=1 -timeout 30m -v -run '^TestFloodMemoryBounded$' ./internal/ingest/server/
}

phase deps deps
phase lint hack/lint.sh
phase test run_tests
phase flood flood
