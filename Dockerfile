# syntax=docker/dockerfile:1
#
# The JWThenticator server as a small non-root image:
#
#   docker build -t jwthenticator-server .
#   docker run --rm -p 8080:8080 jwthenticator-server
#
# With no configuration it keeps an embedded SQLite database and its generated signing key in
# /data/jwthenticator-data (mount a volume there to keep them). For production point it at
# PostgreSQL (DATABASE_URL or DB_HOST/DB_USER/DB_PASS/DB_NAME) and give it a key file
# (RSA_PRIVATE_KEY_PATH); see examples/docker-compose.yml and examples/kubernetes/.
#
# The example protected service of examples/protected-service is the `protected-service` target:
#
#   docker build --target protected-service -t jwthenticator-example-protected-service .

ARG RUST_VERSION=1
ARG CARGO_CHEF_VERSION=0.1.78

# ---- build stages ------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS chef
ARG CARGO_CHEF_VERSION
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /build

# The dependency recipe: changes only when a Cargo.toml or Cargo.lock does.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# Dependencies are compiled in a layer of their own, reused until the recipe changes; the
# workspace's sources are compiled after it.
FROM chef AS server-builder
COPY --from=planner /build/recipe.json recipe.json
RUN cargo chef cook --release --locked --package jwthenticator-server --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --package jwthenticator-server --bin jwthenticator-server

FROM chef AS protected-service-builder
COPY --from=planner /build/recipe.json recipe.json
RUN cargo chef cook --release --locked --package example-protected-service --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --package example-protected-service --bin example-protected-service

# ---- runtime base ------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
# CA certificates for TLS to PostgreSQL (and, in the example service, to the JWKS URL); not
# pinned, so that a rebuild picks up the distribution's current trust store.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 jwthenticator \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /data \
        --shell /usr/sbin/nologin jwthenticator \
    && mkdir /data \
    && chown 10001:10001 /data
WORKDIR /data

# ---- the example protected service (docker build --target protected-service) -------------------
FROM runtime AS protected-service
COPY --from=protected-service-builder /build/target/release/example-protected-service /usr/local/bin/example-protected-service
USER 10001:10001
ENV JWTHENTICATOR_URL=http://jwthenticator:8080 \
    PORT=3000
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/example-protected-service"]

# ---- the server (the default target) -----------------------------------------------------------
FROM runtime AS server
COPY --from=server-builder /build/target/release/jwthenticator-server /usr/local/bin/jwthenticator-server
USER 10001:10001
# The embedded SQLite default (no database configured) writes /data/jwthenticator-data: mount a
# volume at /data to keep it.
ENV HOST=0.0.0.0 \
    PORT=8080
EXPOSE 8080
# `healthcheck` exits 0 when http://127.0.0.1:$PORT/health answers 200.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/jwthenticator-server", "healthcheck"]
# With no arguments it serves; `docker run IMAGE keygen ...`, `... purge` etc. run a subcommand.
ENTRYPOINT ["/usr/local/bin/jwthenticator-server"]
