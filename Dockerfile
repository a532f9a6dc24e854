# tether agent and gateway image. Not built on the development machine (no
# container engine there); see README "Containers and Kubernetes".
#
#   docker build -t tether .
#   docker run -v tether-state:/var/lib/tether -e TETHER_STATE_DIR=/var/lib/tether tether enroll ...
#   docker run -v tether-state:/var/lib/tether -e TETHER_STATE_DIR=/var/lib/tether tether run

FROM debian:12 AS build
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      g++ cmake ninja-build libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev \
      libssl-dev libsqlite3-dev libpq-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DTETHER_BUILD_TESTS=OFF \
 && cmake --build /build --target tether tether-gateway

FROM debian:12-slim
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libboost-json1.81.0 libboost-url1.81.0 libssl3 libsqlite3-0 libpq5 ca-certificates wget \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/tether --create-home --shell /usr/sbin/nologin tether \
 && chmod 0700 /var/lib/tether
COPY --from=build /build/app/tether /build/app/tether-gateway /usr/local/bin/
USER tether
ENV TETHER_STATE_DIR=/var/lib/tether \
    TETHER_LOG_FORMAT=json
VOLUME ["/var/lib/tether"]
# tether handles SIGTERM itself (drain, exit 0) and, as PID 1, reaps orphans:
# no init shim needed.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tether"]
CMD ["run", "--health-listen", "127.0.0.1:9464"]
