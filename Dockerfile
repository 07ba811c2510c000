# syntax=docker/dockerfile:1
# The mailtrace image: the one static `mailtrace` binary (CGO off: the SQLite
# driver is pure Go) on distroless static, running as non-root 65532.
#   make docker-build IMG=registry.example.com/mailtrace:v0.1.0
# test/image checks this file's invariants (no Docker engine needed).
# Base images are pinned to exact versions; pin their digests too
# (FROM image:tag@sha256:...) in a release pipeline that can reach the registries.

ARG GO_IMAGE=golang:1.26.8-trixie
ARG BASE_IMAGE=gcr.io/distroless/static-debian13:nonroot

FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS builder
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG VERSION=dev
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath \
      -ldflags "-s -w -X github.com/mailtrace/mailtrace/internal/cli.Version=${VERSION}" \
      -o /out/mailtrace ./cmd/mailtrace

# distroless static: CA certificates, /etc/passwd with nonroot (65532), no
# shell, no package manager. The time zone database is built into the binary.
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="mailtrace" \
      org.opencontainers.image.description="Message trace for self-hosted mail on Kubernetes" \
      org.opencontainers.image.source="https://github.com/mailtrace/mailtrace"
COPY --from=builder /out/mailtrace /mailtrace
USER 65532:65532
# The embedded store's default path (sqlite:///var/lib/mailtrace/mailtrace.db)
# is a volume in Kubernetes (the chart mounts a PersistentVolumeClaim there).
WORKDIR /
ENTRYPOINT ["/mailtrace"]
CMD ["--help"]
