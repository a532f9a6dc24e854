# tether agent and gateway image: built and drilled by tools/container-test
# with podman (docker with BuildKit reads the same file; only podman is
# tested here).
#
#   podman build --format docker -t tether .
#   TETHER_CODE=CODE podman run -e TETHER_CODE -v tether-state:/var/lib/tether tether enroll --server URL
#   podman run -v tether-state:/var/lib/tether tether                      # tether run
#   podman run --entrypoint /usr/local/bin/tether-gateway -e TETHER_HEALTH_LISTEN=127.0.0.1:8443 \
#     -v tether-gw:/var/lib/tether tether serve --data-dir /var/lib/tether/gateway
#
# The runtime stage is FROM scratch: the two binaries, the Debian 12 shared
# libraries they load and those packages' copyright files, CA certificates,
# a passwd with uid 10001 (tools/container-rootfs). No shell and no package
# manager; /usr/share/doc/tether-image/packages lists what is inside.

FROM debian:12 AS build
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      g++ cmake ninja-build ccache libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev \
      libssl-dev libsqlite3-dev libpq-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The compiler cache outlives the build (a cache mount): a rebuild after a
# small change takes seconds, not minutes.
RUN --mount=type=cache,target=/root/.cache/ccache \
    cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" \
          -DTETHER_BUILD_TESTS=OFF \
 && cmake --build /build --target tether tether-gateway \
 && strip /build/app/tether /build/app/tether-gateway \
 && tools/container-rootfs /rootfs /build/app/tether /build/app/tether-gateway

FROM scratch
COPY --from=build /rootfs/ /
USER 10001:10001
ENV TETHER_STATE_DIR=/var/lib/tether \
    TETHER_LOG_FORMAT=json \
    TETHER_HEALTH_LISTEN=127.0.0.1:9464
VOLUME ["/var/lib/tether"]
# `tether probe` GETs /livez on TETHER_HEALTH_LISTEN (loopback only): the
# agent's by default, the gateway's with TETHER_HEALTH_LISTEN=127.0.0.1:8443.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/tether", "probe"]
# tether handles SIGTERM itself (drain, exit 0) and, as PID 1, reaps orphans:
# no init shim needed.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tether"]
CMD ["run"]
