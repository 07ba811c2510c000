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
# file; settle waits for it, prints its output and records it like phase.
bg_pid=""
beside() {
  bg_name="$1"; shift
  echo ">> [$bg_name] $* (beside the next phases)" >&2
  bg_t0=$(date +%s)
  bg_log="$(mktemp)"
  "$@" >"$bg_log" 2>&1 &
  bg_pid=$!
}
settle() {
  [[ -n "$bg_pid" ]] || return 0
  wait "$bg_pid"
  local rc=$?
  bg_pid=""
  cat "$bg_log"
  rm -f "$bg_log"
  names+=("$bg_name"); secs+=("$(( $(date +%s) - bg_t0 ))")
  if (( rc != 0 )); then
    results+=("FAILED (exit $rc)")
    return "$rc"
  fi
  results+=("ok")
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
# lint and the unit and envtest suites (168 s of a 9 min 36 s warm run when
# it ran beside lint alone, which took 46 s).
beside maillab maillab
phase lint hack/lint.sh
phase test run_tests
settle || exit $?
phase flood flood
