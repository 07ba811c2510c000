#!/usr/bin/env bash
# Makes sure the mail lab's second and third MTAs are unpacked: Exim
# (Debian's exim4-daemon-heavy 4.96, for its spam ACL) and OpenSMTPD
# (Debian's opensmtpd 6.8). Both conflict with the postfix package (they
# provide mail-transport-agent), so they are not installed: `apt-get
# download` and `dpkg-deb -x` unpack them, with the libraries the machine
# lacks, into the per-user cache
# (${MAILTRACE_CACHE:-${XDG_CACHE_HOME:-~/.cache}/mailtrace}/mta/<versions>),
# which bin/mta points at. Exim needs its compiled-in user (Debian-exim),
# created here when missing. Silent and instant when all is there; prints
# the prefix with -p. The lab (internal/testutil/maillab) finds it there.
set -euo pipefail

EXIM_VERSION=4.96
OPENSMTPD_VERSION=6.8.0p2
cache="${MAILTRACE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mailtrace}"
dest="$cache/mta/exim-${EXIM_VERSION}_opensmtpd-${OPENSMTPD_VERSION}"
root="$(cd "$(dirname "$0")/.." && pwd)"

if [[ ! -x "$dest/usr/sbin/exim4" || ! -x "$dest/usr/sbin/smtpd" ]]; then
  echo ">> unpacking Exim ${EXIM_VERSION} and OpenSMTPD ${OPENSMTPD_VERSION} (Debian's packages) into $dest" >&2
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  chmod 755 "$tmp" # apt's _apt user downloads into it
  pkgs=(exim4-base exim4-daemon-heavy opensmtpd libidn12 libmariadb3 libspf2-2)
  if ! (cd "$tmp" && apt-get download -q "${pkgs[@]}" >/dev/null 2>&1); then
    # a stale package index names versions the mirror no longer has
    if [[ "$(id -u)" == 0 ]]; then apt-get update -qq >&2 || true; fi
    (cd "$tmp" && apt-get download -q "${pkgs[@]}" >&2) || {
      echo "hack/exim.sh: apt-get download ${pkgs[*]} failed (see above)" >&2
      exit 1
    }
  fi
  mkdir -p "$tmp/x"
  for f in "$tmp"/*.deb; do dpkg-deb -x "$f" "$tmp/x"; done
  mkdir -p "$(dirname "$dest")"
  rm -rf "$dest"
  mv "$tmp/x" "$dest"
  chmod 755 "$dest"
fi

if ! id Debian-exim >/dev/null 2>&1; then
  if [[ "$(id -u)" != 0 ]]; then
    echo "hack/exim.sh: Exim runs as its compiled-in user Debian-exim, which does not exist; run as root: useradd --system --no-create-home --shell /usr/sbin/nologin Debian-exim" >&2
    exit 1
  fi
  useradd --system --no-create-home --home-dir /var/spool/exim4 --shell /usr/sbin/nologin Debian-exim
fi
for u in opensmtpd opensmtpq; do
  if ! id "$u" >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
    useradd --system --no-create-home --home-dir /var/spool/smtpd --shell /usr/sbin/nologin "$u"
  fi
done

# OpenSMTPD runs its delivery helpers (mail.lmtp, mail.mda, ...) from the
# path compiled into it, as the mailbox's user: they are copied there (no
# package owns that directory, opensmtpd not being installed).
if [[ ! -x /usr/libexec/opensmtpd/mail.lmtp ]]; then
  if [[ "$(id -u)" != 0 ]]; then
    echo "hack/exim.sh: OpenSMTPD's helpers are not in /usr/libexec/opensmtpd; run as root: cp -a $dest/usr/libexec/opensmtpd /usr/libexec/" >&2
    exit 1
  fi
  mkdir -p /usr/libexec/opensmtpd
  cp -a "$dest/usr/libexec/opensmtpd/." /usr/libexec/opensmtpd/
fi
# its chroot, compiled in
[[ -d /var/lib/opensmtpd/empty ]] || { [[ "$(id -u)" == 0 ]] && mkdir -p /var/lib/opensmtpd/empty; }

mkdir -p "$root/bin"
ln -sfn "$dest" "$root/bin/mta"
if [[ "${1:-}" == "-p" ]]; then
  echo "$dest"
fi
