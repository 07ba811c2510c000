#!/usr/bin/env bash
# Makes sure a headless-capable Chromium is installed, for the console's
# browser tests (test/console drives it with chromedp). Installs Debian's
# chromium package with apt-get only when no chromium is found; silent and
# instant when one is. Prints the browser's path with -p. Fails with a clear
# message when it cannot install (not root and no sudo, or apt-get failed).
# CHROMIUM, when set, names the browser to use instead.
set -euo pipefail

find_browser() {
  if [[ -n "${CHROMIUM:-}" && -x "${CHROMIUM}" ]]; then echo "$CHROMIUM"; return; fi
  local b
  for b in chromium chromium-browser google-chrome-stable google-chrome headless_shell; do
    if command -v "$b" >/dev/null 2>&1; then command -v "$b"; return; fi
  done
}

browser="$(find_browser)"
if [[ -z "$browser" ]]; then
  SUDO=()
  if [[ "$(id -u)" != 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      SUDO=(sudo -n)
    else
      echo "hack/chromium.sh: the console's browser tests need Chromium, which is not installed, and this user is neither root nor allowed sudo;" >&2
      echo "  run as root: apt-get install -y --no-install-recommends chromium" >&2
      exit 1
    fi
  fi
  echo ">> installing Chromium (apt-get install chromium) for the console's browser tests" >&2
  apt_install() {
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk >&2
  }
  if ! apt_install; then
    "${SUDO[@]}" apt-get update -qq >&2 || true
    apt_install || { echo "hack/chromium.sh: apt-get install chromium failed (see above)" >&2; exit 1; }
  fi
  browser="$(find_browser)"
  [[ -n "$browser" ]] || { echo "hack/chromium.sh: chromium installed but not found on PATH" >&2; exit 1; }
fi
if [[ "${1:-}" == "-p" ]]; then
  echo "$browser"
fi
