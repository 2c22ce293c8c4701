# syntax=docker/dockerfile:1
#
# One image with the three services at /usr/local/bin/{create-service,lookup-service,
# stats-service}, plus `shortener` for admin commands (`shortener keys create`); the
# Helm chart picks the binary per workload.
#
# The test suite assumes no Docker daemon and does not build this image; its build
# step is the cargo command scripts/stack runs (and the tests exercise), and the
# stack runs the same binaries without containers.
#
#   docker build -t shortener:0.1.0 .

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /build
# The whole workspace: cargo needs every member's manifest even when building three
# of them, and sqlx::migrate! reads migrations/ at compile time.
COPY . .
# The caches keep downloaded crates and compiled dependencies between builds; the
# binaries are copied out in the same step because the target cache is not part of
# the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked -p create-service -p lookup-service -p stats-service -p shortener \
    && mkdir -p /out \
    && cp target/release/create-service target/release/lookup-service target/release/stats-service \
          target/release/shortener /out/

FROM debian:bookworm-slim AS runtime
# ca-certificates for TLS to the database or Redis; nothing else is needed: the
# binaries link only glibc and libgcc (both in the base image) and the migrations
# are compiled into them.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 shortener \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin shortener
COPY --from=builder /out/create-service /out/lookup-service /out/stats-service /out/shortener /usr/local/bin/
# Numeric, so Kubernetes can check runAsNonRoot without resolving a name.
USER 10001:10001
EXPOSE 8081 8082 8083
# The binary is the process itself (PID 1): SIGTERM reaches it directly and starts
# the drain. The chart sets the command per workload; this default is the hot path.
CMD ["/usr/local/bin/lookup-service"]
