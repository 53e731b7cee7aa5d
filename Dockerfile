# syntax=docker/dockerfile:1
# gitops-status: a release build with its dependency layer cached apart from the source
# (cargo-chef), then a distroless runtime holding only the binary and CA certificates.
# Two images from one build:
#   docker build -t gitops-status .                          the server (the last stage)
#   docker build --target report -t gitops-status-report .   the CI step (Woodpecker plugin)

FROM rust:1.95-bookworm AS chef
RUN cargo install cargo-chef --version 0.1.78 --locked
WORKDIR /src

# The recipe lists the dependencies only; it changes when Cargo.toml/Cargo.lock change.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# SQL is checked against the committed .sqlx/ data; no database at build time.
ENV SQLX_OFFLINE=true
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bin gitops-status \
    && install -D -m 0555 target/release/gitops-status /out/usr/local/bin/gitops-status \
    && mkdir -p /out/data

# The CI step: the same binary, running `gitops-status report --plugin`, which reads a
# Woodpecker step's `settings:` (PLUGIN_*) and the GITOPS_STATUS_* variables. It keeps the
# CI's working directory (the workspace, for --drift-output) and writes nothing.
FROM gcr.io/distroless/cc-debian12:nonroot AS report
COPY --from=builder /out/usr/local/bin/gitops-status /usr/local/bin/gitops-status
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/gitops-status", "report", "--plugin"]

# The server, the default target. glibc, libgcc and CA certificates; no shell. UID/GID 65532
# is distroless' "nonroot".
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/usr/local/bin/gitops-status /usr/local/bin/gitops-status
COPY --from=builder --chown=65532:65532 /out/data /data
USER 65532:65532
# Nothing is written relative to the working directory; it may be read-only like the rest.
WORKDIR /
ENV GITOPS_STATUS_LISTEN=0.0.0.0:5000 \
    GITOPS_STATUS_DB=/data/gitops-status.db
# The only place the service writes: the SQLite file and its -wal/-shm companions.
VOLUME ["/data"]
EXPOSE 5000
ENTRYPOINT ["/usr/local/bin/gitops-status", "serve"]
