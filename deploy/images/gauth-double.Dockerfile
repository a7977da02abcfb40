# gauth-double: the GAuth test double (e2e/gauth/gauth_double.py) as an image, for the kind
# overlay and the podman pod. NOT for production: it accepts the tokens of its users file.
# Build context: the repository root.   podman build -f deploy/images/gauth-double.Dockerfile .
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/log/*.log
COPY e2e/gauth/gauth_double.py e2e/gauth/users.json /opt/gauth/
USER 65532:65532
EXPOSE 8095
STOPSIGNAL SIGTERM
# python3 -u: the request log reaches `kubectl logs` at once; the script handles SIGTERM
ENTRYPOINT ["/usr/bin/python3", "-u", "/opt/gauth/gauth_double.py", "--host", "0.0.0.0", "--port", "8095", "--users", "/opt/gauth/users.json"]
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="gauth-double" \
      org.opencontainers.image.description="Test double of Genesys Authentication (GAuth) for tlm's end-to-end tests; not for production" \
      org.opencontainers.image.version="$VERSION" \
      org.opencontainers.image.revision="$REVISION" \
      org.opencontainers.image.created="$CREATED" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim" \
      io.tlm.user="65532:65532"
