# tlm-logshipper: one JSON line per record on stdout, Prometheus /metrics on :9107.
# Build context: the repository root.   podman build -f deploy/images/logshipper.Dockerfile .
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
      libwebsockets17 libjansson4 zlib1g libpcre2-8-0 libsystemd0 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/log/*.log \
 && install -d -o 65532 -g 65532 -m 0750 /run/tlm
COPY --from=build /out/tlm-logshipper /usr/local/bin/tlm-logshipper
# fails the build when a linked library is missing from this stage
RUN ldd /usr/local/bin/tlm-logshipper | awk '/not found/ { bad = 1; print } END { exit bad }' \
 && /usr/local/bin/tlm-logshipper --help >/dev/null
USER 65532:65532
EXPOSE 9107
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tlm-logshipper"]
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="tlm-logshipper" \
      org.opencontainers.image.description="tlm telemetry service: writes one JSON line per record to stdout, serves Prometheus /metrics on :9107" \
      org.opencontainers.image.version="$VERSION" \
      org.opencontainers.image.revision="$REVISION" \
      org.opencontainers.image.created="$CREATED" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim" \
      io.tlm.ports="9107/tcp: /metrics, /health/live, /health/ready" \
      io.tlm.user="65532:65532"
