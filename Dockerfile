# syntax=docker/dockerfile:1
# The cross-postback daemon. Build: docker build -t cross-postback .  (or docker compose build)

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and compiled dependencies between builds, so a source change
# rebuilds only this crate. The binary is copied out because the mounted target/ is not part of
# the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && cp target/release/cross-postback /usr/local/bin/cross-postback

FROM debian:bookworm-slim
# ca-certificates: HTTPS to cross-postback receivers; curl: the compose healthcheck.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin cross-postback
COPY --from=builder /usr/local/bin/cross-postback /usr/local/bin/cross-postback
COPY config/ /etc/cross-postback/
USER cross-postback
# Listen on all interfaces: the default 127.0.0.1 is unreachable from outside a container.
ENV XPB_HTTP__LISTEN=0.0.0.0:9090
EXPOSE 9090
ENTRYPOINT ["cross-postback"]
CMD ["run"]
