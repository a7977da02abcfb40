# tlm-ingest: the client API (HTTP batches, WebSocket stream) on :8107.
# Build context: the repository root.   podman build -f deploy/images/ingest.Dockerfile .
# (deploy/images/build.sh builds every image; `make images` calls it.)
# ---- build: the top-level Makefile with the -dev packages (identical in ingest.Dockerfile
# and logshipper.Dockerfile, so the second image reuses this stage from the layer cache)
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc libc6-dev make pkg-config \
      libwebsockets-dev libjansson-dev libcurl4-openssl-dev zlib1g-dev libpcre2-dev libsystemd-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY common/ common/
COPY proto/ proto/
COPY ingest/ ingest/
COPY logshipper/ logshipper/
RUN make -j"$(nproc)" BUILD=/out /out/tlm-ingest /out/tlm-logshipper

# ---- runtime: only the shared libraries the binary links, a non-root numeric user, no
# shell needed at run time (exec-form entrypoint, HTTP probes).
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libwebsockets17 libwebsockets-evlib-ev libev4 libjansson4 libcurl4 zlib1g libpcre2-8-0 libsystemd0 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/log/*.log \
 && install -d -o 65532 -g 65532 -m 0750 /run/tlm
COPY --from=build /out/tlm-ingest /usr/local/bin/tlm-ingest
# fails the build when a linked library, or the libev plugin lws loads at start, is missing
RUN ldd /usr/local/bin/tlm-ingest | awk '/not found/ { bad = 1; print } END { exit bad }' \
 && ls /usr/lib/*/libwebsockets-evlib_ev.so >/dev/null \
 && /usr/local/bin/tlm-ingest --print-config >/dev/null
USER 65532:65532
EXPOSE 8107
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tlm-ingest"]
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="tlm-ingest" \
      org.opencontainers.image.description="tlm telemetry service: client API (HTTP batches, WebSocket stream) on :8107, GAuth authentication, forwards to the logshipper over a UNIX socket" \
      org.opencontainers.image.version="$VERSION" \
      org.opencontainers.image.revision="$REVISION" \
      org.opencontainers.image.created="$CREATED" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim" \
      io.tlm.ports="8107/tcp: API and /health/live, /health/ready" \
      io.tlm.user="65532:65532"
