#!/usr/bin/env bash
# Makes sure the PostgreSQL server binaries (initdb, postgres) are installed,
# for the throwaway clusters internal/testutil/pgtest starts. Installs
# Debian's postgresql package only when no /usr/lib/postgresql/*/bin/initdb
# exists; silent and instant when one does. Prints nothing on success when
# already installed; prints the bin directory with -p.
set -euo pipefail

# The newest /usr/lib/postgresql/<major>/bin holding initdb, else pg_config's.
find_bindir() {
  local d
  d="$(for d in /usr/lib/postgresql/*/bin; do [[ -x "$d/initdb" && -x "$d/postgres" ]] && echo "$d"; done | sort -t/ -k5,5n | tail -1)"
  if [[ -z "$d" ]] && command -v pg_config >/dev/null 2>&1; then
    d="$(pg_config --bindir)"
    [[ -x "$d/initdb" && -x "$d/postgres" ]] || d=""
  fi
  echo "$d"
}

bindir="$(find_bindir)"
if [[ -z "$bindir" ]]; then
  if [[ "$(id -u)" != 0 ]]; then
    echo "hack/postgres.sh: PostgreSQL is not installed; run as root: apt-get install -y postgresql" >&2
    exit 1
  fi
  echo ">> installing PostgreSQL (apt-get install -y postgresql) for the store tests" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  bindir="$(find_bindir)"
  [[ -n "$bindir" ]] || { echo "hack/postgres.sh: postgresql installed but no initdb found" >&2; exit 1; }
fi
if [[ "${1:-}" == "-p" ]]; then
  echo "$bindir"
fi
