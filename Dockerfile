# syntax=docker/dockerfile:1
#
# Portcullis in a distroless image: the release binary, a default config, glibc and the CA
# bundle; no shell, no package manager. Build and run (from the repository root):
#
#   docker build -t portcullis .
#   docker run --rm -p 3000:3000 -v "$PWD/my-config.yaml:/etc/portcullis/config.yaml:ro" portcullis
#
# For stdio MCP servers (python3, uv, node in the image) use Dockerfile.stdio. deploy/README.md
# is the deployment guide (Kubernetes: deploy/kubernetes). tests/it/deploy.rs builds the binary
# with the command below and runs it in an empty root holding only what this image holds, as the
# user, on the ports and with the config path declared here.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The registry and target caches make rebuilds incremental; the binary is copied out of the cache.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin portcullis \
    && install -D -m 0755 target/release/portcullis /out/portcullis

# glibc, libgcc_s, CA certificates, /etc/passwd with nonroot (65532); nothing else.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/portcullis /usr/local/bin/portcullis
# The default config answers on port 3000 and says where to mount a real one.
COPY deploy/container/config.yaml /etc/portcullis/config.yaml
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 65532:65532
# Listener of the default config, metrics (/metrics), readiness (/healthz/ready), and the peer
# listener when PORTCULLIS_PEER_ADDR is set (sessions shared between replicas).
EXPOSE 3000 15020 15021 15030
# SIGTERM drains: readiness answers 503, listeners close, calls in flight finish within
# config.connectionTerminationDeadline, then the process exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/portcullis", "-f", "/etc/portcullis/config.yaml"]
