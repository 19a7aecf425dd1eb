# syntax=docker/dockerfile:1
#
# mtls-proxy container image: built with Maven on a JDK image, run on a JRE image as a fixed non-root user.
#
#   docker build --build-arg REVISION=$(git rev-parse --short=12 HEAD) -t mtls-proxy .
#                                           (or: podman build --format docker ...)
#   docker run --read-only --tmpfs /tmp:rw,exec,size=64m -p 8443:8443 -p 9901:9901 \
#       -v "$PWD/my-config:/etc/mtls-proxy:ro" mtls-proxy
#
# The base images are build arguments so they can be swapped for a hardened or mirrored copy; the defaults are the
# public Eclipse Temurin images. deploy/container-test.sh builds this file on locally made Debian stand-ins and checks
# the running container (README.md, "Container image").
ARG BUILD_IMAGE=maven:3.9-eclipse-temurin-17
ARG RUNTIME_IMAGE=eclipse-temurin:17-jre

FROM ${BUILD_IMAGE} AS build
# Lets a builder find (and prune) its old build stages.
LABEL dev.mtlsproxy.stage=build
WORKDIR /src
# Only the poms and main sources reach the build context (.dockerignore); tests run in CI, not in the image build.
COPY pom.xml ./
COPY proxy-config/pom.xml proxy-config/
COPY proxy-core/pom.xml proxy-core/
COPY proxy-app/pom.xml proxy-app/
# The benchmark module's pom only: the reactor must see every module, but the image builds proxy-app and what it
# needs (-pl proxy-app -am), never the benchmarks.
COPY proxy-bench/pom.xml proxy-bench/
COPY proxy-config/src proxy-config/src
COPY proxy-core/src proxy-core/src
COPY proxy-app/src proxy-app/src
# The git commit `mtls-proxy version` and mtls_proxy_build_info report: the build context has no .git, so it is
# passed in (--build-arg REVISION=$(git rev-parse --short=12 HEAD)); without it they say "unknown".
ARG REVISION=
# The local Maven repository is a build cache, not a layer: downloads are kept between builds on the same machine
# and never end up in an image.
RUN --mount=type=cache,id=mtls-proxy-m2,target=/root/.m2 \
    mvn -B -ntp -q -DskipTests ${REVISION:+-Dmtlsproxy.revision=$REVISION} -pl proxy-app -am package \
    && cp proxy-app/target/mtls-proxy.jar /mtls-proxy.jar

FROM ${RUNTIME_IMAGE}
# A fixed UID/GID, so volume and Secret permissions can be granted to it (Kubernetes: fsGroup 10001).
RUN groupadd --system --gid 10001 mtls-proxy \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin mtls-proxy \
    && mkdir -p /etc/mtls-proxy /opt/mtls-proxy
COPY --from=build /mtls-proxy.jar /opt/mtls-proxy/mtls-proxy.jar
COPY deploy/container/mtls-proxy /usr/local/bin/mtls-proxy
RUN chmod 0755 /usr/local/bin/mtls-proxy && chmod 0644 /opt/mtls-proxy/mtls-proxy.jar

# Class-data sharing (AppCDS): a training run of this image's own JVM and jar records the classes that start-up and
# a first proxied request load (`demo --check`: throwaway PKI, echo backend, proxy, the three demo requests, all on
# loopback), and the entry point maps that archive at every start: about 0.5 s less to the first served request.
# The training files, demo keys included, are deleted in the same layer. A JVM that cannot use the archive (another
# JVM build, another jar path) starts without it, only slower.
# The demo's ports become 0 (any free port): a build may share the host's network, where 8443 may be taken.
COPY config/demo.yaml /opt/mtls-proxy/training/config/demo.yaml
RUN sed -i -e 's/127\.0\.0\.1:[0-9][0-9]*/127.0.0.1:0/' /opt/mtls-proxy/training/config/demo.yaml \
    && java -XX:ArchiveClassesAtExit=/opt/mtls-proxy/mtls-proxy.jsa -Xlog:cds=error \
        -jar /opt/mtls-proxy/mtls-proxy.jar demo --check --config /opt/mtls-proxy/training/config/demo.yaml \
    && rm -rf /opt/mtls-proxy/training /tmp/* \
    && chmod 0644 /opt/mtls-proxy/mtls-proxy.jsa

# /etc/mtls-proxy: the config and everything it names (certificates, keys, CA bundles), mounted read-only.
# /tmp: the only place the process writes: the JVM's perf data and netty-tcnative's native library, which is
# extracted and loaded from here (so a tmpfs here must not be noexec). All else may be read-only (--read-only).
VOLUME ["/etc/mtls-proxy", "/tmp"]

# Debian-based images have no UTF-8 locale by default; without one, Java 17 writes non-ASCII names in certificate
# subjects to the logs as '?'.
ENV LANG=C.UTF-8
USER 10001:10001
WORKDIR /tmp
# 8443: the mTLS listener of the default config; 9901: admin (metrics, /healthz, /readyz), which a container config
# binds on 0.0.0.0 so that probes and scrapers reach it.
EXPOSE 8443 9901
# SIGTERM starts the graceful drain: /readyz turns 503, in-flight requests finish, exit code 0.
STOPSIGNAL SIGTERM
# The app checks itself (admin /readyz on 127.0.0.1:9901): no curl in the image. With another admin port:
# docker run --health-cmd 'mtls-proxy health --admin 127.0.0.1:PORT'.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 CMD ["/usr/local/bin/mtls-proxy", "health"]

ENTRYPOINT ["/usr/local/bin/mtls-proxy"]
CMD ["run", "--config", "/etc/mtls-proxy/mtls-proxy.yaml"]

LABEL org.opencontainers.image.title="mtls-proxy" \
      org.opencontainers.image.description="Zero-trust mutual-TLS reverse proxy"
