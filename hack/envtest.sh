#!/usr/bin/env bash
# Builds the envtest control plane (kube-apiserver and etcd) from the Go module
# proxy, because setup-envtest cannot download its prebuilt binaries here.
# The result is cached once per machine in the per-user cache
# (${MAILTRACE_CACHE:-${XDG_CACHE_HOME:-~/.cache}/mailtrace}/k8s/<version>, as
# setup-envtest keeps its binaries), and bin/k8s/<version> of the checkout links
# to it, so a fresh clone (CI's) reuses it; nothing is rebuilt when present.
# Prints the assets directory on stdout (progress goes to stderr).
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-1.37.2}"   # matches k8s.io/client-go v0.37.x in go.mod
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${MAILTRACE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mailtrace}"
dest="$cache/k8s/${KUBE_VERSION}"
link="$root/bin/k8s/${KUBE_VERSION}"
# bin/k8s/<version> in the checkout points at the per-user cache.
link_checkout() {
  if [[ ! -e "$link" || -L "$link" ]]; then
    mkdir -p "$(dirname "$link")"
    ln -sfn "$dest" "$link"
  fi
}
if [[ -x "$link/kube-apiserver" && -x "$link/etcd" ]]; then
  echo "$link"
  exit 0
fi
if [[ -x "$dest/kube-apiserver" && -x "$dest/etcd" ]]; then
  link_checkout
  echo "$link"
  exit 0
fi
mkdir -p "$dest"
# One build per machine at a time: parallel test packages, a second clone or
# a second `make test` wait here for the build under way (it takes minutes)
# instead of starting their own, then find its result.
exec 9>"$dest.lock"
if ! flock -n 9; then
  echo ">> waiting for another build of the envtest control plane (${dest})" >&2
  flock 9
fi
if [[ -x "$dest/kube-apiserver" && -x "$dest/etcd" ]]; then
  link_checkout
  echo "$link"
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0

if [[ ! -x "$dest/etcd" ]]; then
  echo ">> building etcd v${ETCD_VERSION} from the Go module proxy (about a minute on an idle machine, once per machine)" >&2
  mkdir -p "$work/etcd"
  (
    cd "$work/etcd"
    cat > go.mod <<MOD
module envtest/etcd
go 1.24
require go.etcd.io/etcd/server/v3 v${ETCD_VERSION}
MOD
    cat > main.go <<'SRC'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
SRC
    go mod tidy >&2
    go build -trimpath -ldflags=-s -o "$dest/etcd.tmp" . >&2
    mv "$dest/etcd.tmp" "$dest/etcd"
  )
fi

if [[ ! -x "$dest/kube-apiserver" ]]; then
  echo ">> building kube-apiserver v${KUBE_VERSION} from the Go module proxy (8 to 15 minutes cold on 2 idle cores, far longer when they are shared; once per machine)" >&2
  mkdir -p "$work/kas"
  (
    cd "$work/kas"
    modfile="$(go mod download -json "k8s.io/kubernetes@v${KUBE_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')"
    minor="0.${KUBE_VERSION#1.}"
    {
      echo "module envtest/kas"
      echo "go 1.24"
      echo "require k8s.io/kubernetes v${KUBE_VERSION}"
      # every staging module that kubernetes replaces with a local path is
      # replaced with its published v0.Y.Z instead
      grep -E '^\s*k8s.io/[a-z0-9-]+ => ./staging' "$modfile" | awk -v v="v${minor}" '{print "replace " $1 " => " $1 " " v}'
    } > go.mod
    cat > tools.go <<'SRC'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
SRC
    go mod tidy -e >&2 || true
    v=k8s.io/component-base/version
    go build -trimpath -ldflags="-s -X $v.gitVersion=v${KUBE_VERSION} -X $v.gitMajor=${KUBE_VERSION%%.*} -X $v.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2)" \
      -o "$dest/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver >&2
    mv "$dest/kube-apiserver.tmp" "$dest/kube-apiserver"
  )
fi
link_checkout
echo "$link"
