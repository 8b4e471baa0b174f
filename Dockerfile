# canaryd on Debian 12. Build:  docker build -t canaryd .
# Run:   docker run -p 8080:8080 -v canaryd-data:/var/lib/canaryd canaryd
# Keys:  docker run --rm -v canaryd-data:/var/lib/canaryd canaryd \
#          keys create --data-dir /var/lib/canaryd --scopes ingest,subscribe,read
# canary-sensor in the image reads its address lists with
#   --data-dir /usr/share/canaryd/data
FROM debian:12 AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config libwebsockets-dev libev-dev liblmdb-dev libmsgpack-dev \
        libjansson-dev libidn2-dev libloc-dev libinih-dev libcurl4-openssl-dev libssl-dev \
        libmosquitto-dev libhiredis-dev nodejs npm \
    && rm -rf /var/lib/apt/lists/*
COPY . /src
RUN cmake -S /src -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    && cmake --build /build -j"$(nproc)" --target canaryd canary-sensor canary-tail console

FROM debian:12
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libwebsockets17 libwebsockets-evlib-ev libev4 liblmdb0 libmsgpackc2 libjansson4 libidn2-0 libloc1 libloc-database \
        libinih1 libcurl4 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /var/lib/canaryd canaryd \
    && mkdir -p /var/lib/canaryd /usr/share/canaryd \
    && chown canaryd:canaryd /var/lib/canaryd
COPY --from=build /build/server/canaryd /build/clients/canary-sensor /build/clients/canary-tail /usr/local/bin/
COPY --from=build /src/data /usr/share/canaryd/data
COPY --from=build /src/console/dist /usr/share/canaryd/console
COPY --from=build /src/conf/canaryd.conf /etc/canaryd/canaryd.conf
USER canaryd
VOLUME /var/lib/canaryd
EXPOSE 8080
ENTRYPOINT ["canaryd"]
CMD ["--config", "/etc/canaryd/canaryd.conf", "--listen", "0.0.0.0:8080", "--data-dir", "/var/lib/canaryd", \
     "--set", "console_dir=/usr/share/canaryd/console"]
