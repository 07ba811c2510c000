#!/usr/bin/env bash
# `make test`: every test, in phases, with a timing summary at the end
# (printed on failure too, so a slow or red CI run says where its time went).
#
#   deps   what the tests start and the linters, built or installed once
#          per machine (hack/envtest.sh, minio.sh, postgres.sh,
#          chromium.sh, golangci-lint.sh, dupl.sh)
#   lint   gofmt, go mod tidy, golangci-lint with the import rules, the
#          duplication check (hack/lint.sh)
#   maillab  the mail lab (test/maillab): real Postfix, rspamd, Dovecot and
#          rsyslog into `mailtrace ingest`, every scenario; beside lint
#   test   go test ./... but the mail lab: unit, store conformance (SQLite,
#          PostgreSQL), S3 (MinIO), envtest suites, tenancy, faults, chart, image,
#          the console in headless Chromium (test/console)
#   flood  the 1 GB ingest flood with its memory figures
#
# The phases run one after another: on two cores `go test` already builds
# and runs two packages at a time, and a build beside it would only compete
# for the same cores and build cache. The mail lab is the exception: once
# its test binary is built it mostly waits on its daemons and on mail
# (seconds of CPU in a minute), so it runs beside lint, its output printed
# when it ends.
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
    printf '  %-7s %6ss  %s\n' "${names[$i]}" "${secs[$i]}" "${results[$i]}"
  done
  printf '  %-7s %6ss\n' "total" "$total"
}

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

# beside NAME CMD...: starts CMD in the background, its output kept in a
# file; settle waits for every such job, in the order they started, prints
# its output and records it like phase.
declare -a bg_pids=() bg_names=() bg_t0s=() bg_logs=()
beside() {
  local name="$1"; shift
  echo ">> [$name] $* (beside the next phases)" >&2
  bg_names+=("$name"); bg_t0s+=("$(date +%s)")
  local log; log="$(mktemp)"
  bg_logs+=("$log")
  "$@" >"$log" 2>&1 &
  bg_pids+=("$!")
}
settle() {
  local i rc failed=0
  for i in "${!bg_pids[@]}"; do
    wait "${bg_pids[$i]}"
    rc=$?
    cat "${bg_logs[$i]}"
    rm -f "${bg_logs[$i]}"
    names+=("${bg_names[$i]}"); secs+=("$(( $(date +%s) - ${bg_t0s[$i]} ))")
    if (( rc != 0 )); then
      results+=("FAILED (exit $rc)")
      failed=$rc
    else
      results+=("ok")
    fi
  done
  bg_pids=() bg_names=() bg_t0s=() bg_logs=()
  return "$failed"
}
# A phase that fails beside it waits for it, so its outcome is reported too.
trap 'settle; summary' EXIT

deps() {
  hack/envtest.sh >/dev/null && hack/postgres.sh && hack/minio.sh >/dev/null &&
    hack/maillab.sh && hack/chromium.sh && hack/golangci-lint.sh >/dev/null && hack/dupl.sh >/dev/null
}

maillab() {
  CI=true "$GO" test -count=1 -timeout 15m ./test/maillab/...
}

run_tests() {
  local pkgs
  pkgs="$("$GO" list ./... | grep -v '/test/maillab$')" || return 1
  # shellcheck disable=SC2086 # one package a word
  KUBEBUILDER_ASSETS="$(hack/envtest.sh)" MAILTRACE_TEST_MINIO="$(hack/minio.sh)" \
    "$GO" test -count=1 -timeout 45m $pkgs
}

flood() {
  MAILTRACE_FLOOD_BYTES=1G "$GO" test -count=1 -timeout 30m -v -run '^TestFloodMemoryBounded$' ./internal/ingest/server/
}

phase deps deps
# The mail lab waits on real servers more than it computes: it runs beside
# lint and the unit and envtest suites, and the flood beside the suites (a
# warm run on an idle machine took 9 min 36 s with the lab beside lint only,
# 8 min 38 s with the flood after the suites).
beside maillab maillab
phase lint hack/lint.sh
beside flood flood
phase test run_tests
settle || exit $?
