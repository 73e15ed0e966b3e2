# syntax=docker/dockerfile:1
# Builds pedigree-server and pedigree (witness, monitor and the client) in one image.
# The stack that runs it is docker-compose.yml; deploy/ holds its config files.

# --- build: Rust with clang/libclang for RocksDB's bindings (as scripts/setup.sh) ---
FROM rust:1.95-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends clang libclang-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY core core
COPY server server
COPY cli cli
COPY tests tests
COPY bench bench
RUN cargo build --release --locked -p pedigree-server -p pedigree-cli \
    && cp target/release/pedigree-server target/release/pedigree /usr/local/bin/

# --- runtime: Debian slim, a non-root user, the two binaries and the stack's configs ---
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/pedigree --create-home pedigree \
    && cd /var/lib/pedigree \
    && mkdir server-data witness-state monitor-state public \
    && chown pedigree:pedigree server-data witness-state monitor-state public
# (The volume mount points exist and belong to the user, so that new named volumes
# mounted there start out writable by it.)
COPY --from=build /usr/local/bin/pedigree-server /usr/local/bin/pedigree /usr/local/bin/
COPY deploy/server.toml deploy/witness.toml deploy/monitor.toml /etc/pedigree/
COPY deploy/init.sh /usr/local/bin/pedigree-init
USER pedigree
WORKDIR /var/lib/pedigree
# Alone (`docker run`), the server keeps its log in ./pedigree-data; the compose file
# runs it with /etc/pedigree/server.toml instead.
ENV PEDIGREE_LISTEN=0.0.0.0:8080
EXPOSE 8080 7380
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
CMD ["pedigree-server"]
