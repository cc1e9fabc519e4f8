# refbridge container image: one static binary on an empty base, running as
# the unprivileged user 65532. How to build and run it: docs/deploy.md,
# "Container image". deploy/image_test.go (TestDockerfileImage) executes this
# file without Docker; it refuses instructions and flags it cannot check.

# Build stage. Pinned by tag only: the image digest could not be resolved on
# the development machines (no registry access); pin golang:1.26.8-bookworm@sha256:…
# where a registry is reachable. The Go version matches CI's toolchain.
FROM golang:1.26.8-bookworm AS build

# The module proxy: --build-arg GOPROXY=https://mirror.example.org behind a mirror.
ARG GOPROXY=https://proxy.golang.org,direct

WORKDIR /src
# Modules first, so this layer is reused until go.mod or go.sum changes.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
# Pure Go (modernc.org/sqlite), so CGO_ENABLED=0 links statically; timetzdata
# embeds the zone database scratch lacks. .git is not in the context, hence
# -buildvcs=false: `refbridge version` prints "(devel) revision unknown" and
# the Go version; the image tag carries the revision.
RUN CGO_ENABLED=0 go build -buildvcs=false -trimpath -tags timetzdata -ldflags="-s -w" \
        -o /out/refbridge ./cmd/refbridge

# The final image's other files: CA roots for the TLS calls to Primero and
# DTP, passwd/group lines naming user 65532, the configuration directory, and
# the store's directory (its own tree, copied with --chown below).
RUN mkdir -p /rootfs/etc/ssl/certs /rootfs/etc/refbridge /volume \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ca-certificates.crt \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nrefbridge:x:65532:65532:refbridge:/var/lib/refbridge:/sbin/nologin\n' > /rootfs/etc/passwd \
 && printf 'root:x:0:\nrefbridge:x:65532:\n' > /rootfs/etc/group \
 && chmod 0755 /rootfs/etc/refbridge && chmod 0700 /volume

# Final stage: nothing but what is copied here — no shell, no package manager.
FROM scratch
COPY --from=build /rootfs/ /
# The only directory the user may write; a new named volume starts as a copy of it.
COPY --from=build --chown=65532:65532 /volume/ /var/lib/refbridge/
COPY --from=build /out/refbridge /usr/local/bin/refbridge
# SQLite's and Go's temporary files go to the volume too (scratch has no /tmp).
ENV TMPDIR=/var/lib/refbridge
USER 65532:65532
# The inbound API; in a container the configuration says listen: 0.0.0.0:8080.
EXPOSE 8080
VOLUME /var/lib/refbridge
ENTRYPOINT ["/usr/local/bin/refbridge"]
CMD ["serve", "--config", "/etc/refbridge/refbridge.yaml"]
