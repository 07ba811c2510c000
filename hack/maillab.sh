#!/usr/bin/env bash
# Makes sure what the mail lab (internal/testutil/maillab, test/maillab)
# starts is installed: Postfix, swaks, Dovecot (core, LMTP, Sieve), rspamd,
# amavisd-new and rsyslog with its TLS driver, from Debian's packages. Installs only what is
# missing; silent and instant when everything is there. Fails with a clear message when it cannot
# install (not root and no sudo, or apt-get failed).
#
# The packages' own daemons are never started: a policy-rc.d that answers 101
# ("action forbidden") is in place during the install, and the default
# instances are stopped afterwards if something started them anyway, so
# nothing of the machine's holds ports 25, 24, 143, 11332-11334 or 514.
# The lab runs private instances of its own, on free loopback ports.
set -euo pipefail

# Exim and OpenSMTPD conflict with the postfix package: unpacked into the
# per-user cache, not installed (hack/exim.sh).
"$(dirname "$0")/exim.sh"

# file (a glob) -> the package that provides it
declare -A need=(
  [/usr/sbin/postfix]=postfix
  [/usr/bin/swaks]=swaks
  [/usr/sbin/dovecot]=dovecot-core
  [/usr/lib/dovecot/lmtp]=dovecot-lmtpd
  [/usr/lib/dovecot/modules/lib90_sieve_plugin.so]=dovecot-sieve
  [/usr/bin/rspamd]=rspamd
  [/usr/sbin/rsyslogd]=rsyslog
  [/usr/lib/*/rsyslog/lmnsd_gtls.so]=rsyslog-gnutls
  # the amavis variant of the filter hop (internal/testutil/maillab/amavis.go)
  [/usr/sbin/amavisd]=amavisd-new
)

missing=()
for f in "${!need[@]}"; do
  compgen -G "$f" >/dev/null || missing+=("${need[$f]}")
done
if (( ${#missing[@]} == 0 )); then
  exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

SUDO=()
if [[ "$(id -u)" != 0 ]]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    echo "hack/maillab.sh: the mail lab needs ${missing[*]}, which are not installed, and this user is neither root nor allowed sudo;" >&2
    echo "  run as root: apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
fi

echo ">> installing the mail lab's packages (${missing[*]}) with apt-get" >&2

# Keep the packages' daemons from starting while they install.
policy=/usr/sbin/policy-rc.d
if [[ ! -e "$policy" ]] || ! grep -q 'exit 101' "$policy"; then
  backup=""
  if [[ -e "$policy" ]]; then
    backup="$(mktemp)"
    "${SUDO[@]}" cp -p "$policy" "$backup"
  fi
  restore() {
    if [[ -n "$backup" ]]; then "${SUDO[@]}" mv "$backup" "$policy"; else "${SUDO[@]}" rm -f "$policy"; fi
  }
  trap restore EXIT
  printf '#!/bin/sh\n# hack/maillab.sh: no daemon starts during the install\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
  "${SUDO[@]}" chmod 755 "$policy"
fi

export DEBIAN_FRONTEND=noninteractive
# Postfix asks what kind of mail server this is: none of the default
# instance is used; "Local only" keeps it off the network should it ever start.
echo "postfix postfix/main_mailer_type select Local only" | "${SUDO[@]}" debconf-set-selections 2>/dev/null || true
echo "postfix postfix/mailname string maillab.invalid" | "${SUDO[@]}" debconf-set-selections 2>/dev/null || true

apt_install() {
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" >&2
}
if ! apt_install "${missing[@]}"; then
  "${SUDO[@]}" apt-get update -qq >&2 || true
  apt_install "${missing[@]}" || {
    echo "hack/maillab.sh: apt-get install ${missing[*]} failed (see above)" >&2
    exit 1
  }
fi

# Stop whatever started anyway (a machine without policy-rc.d support).
for svc in postfix dovecot rspamd rsyslog redis-server amavis; do
  if command -v service >/dev/null 2>&1; then
    "${SUDO[@]}" service "$svc" stop >/dev/null 2>&1 || true
  fi
done

for f in "${!need[@]}"; do
  if ! compgen -G "$f" >/dev/null; then
    echo "hack/maillab.sh: ${need[$f]} installed but $f is missing" >&2
    exit 1
  fi
done
