#!/usr/bin/env bash
# Builds the real Dockerfile with podman and checks the image through a running container. .ci/run calls it.
#
#   1. installs Debian's podman, runc and debootstrap if missing (and openssl, curl);
#   2. builds stand-in base images, because no registry is reachable here: `debootstrap --variant=minbase bookworm`
#      from the Debian mirror that this machine's apt sources name, imported with `podman import`, then Debian's
#      JDK 17 + Maven (build stage) and JRE 17 (run stage) on top. They are cached in podman's image store under a
#      tag derived from every input (mirror, suite, packages, recipe), so later runs on the same machine skip this;
#   3. builds the Dockerfile on them (podman build, the Maven repository a build cache mount), mints a CA and
#      certificates with openssl, starts a backend on the host, and runs the image read-only, as the image's user,
#      with the config and certificates mounted at /etc/mtls-proxy and a memory limit;
#   4. checks, through the running container: an allowed client certificate gets 200 from the backend, a denied one
#      403, no certificate is refused in the handshake (and counted as no_certificate); /metrics answers; the heap
#      follows the container's memory limit; the process UID is 10001; the image's HEALTHCHECK succeeds; the
#      class-data sharing archive fits the image's JVM (-Xshare:on); SIGTERM stops it with exit code 0 within the
#      drain time.
#
# Every check prints PASS or FAIL with its name; the last line is "N passed, M failed" and the exit code is 1 when
# any check failed. Environment (all optional):
#   MTLS_PROXY_CT_STOP_LIMIT   seconds SIGTERM may take to exit 0 (default 40: the drain delay and deadline)
#   MTLS_PROXY_CT_REBUILD=1    rebuild the stand-in base images even when cached
#   MTLS_PROXY_CT_KEEP=1       keep the work folder (certificates, config, logs) and the stopped container
# Quirks of the machines it runs on: podman runs with --runtime runc and --network=host, and with --ulimit values no
# higher than `ulimit -n` (raising limits is not permitted there).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

IMAGE=localhost/mtls-proxy:container-test
STANDIN_REPO=localhost/mtls-proxy-standin
SUITE=bookworm
JDK_PACKAGES="openjdk-17-jdk-headless maven ca-certificates-java"
JRE_PACKAGES="openjdk-17-jre-headless"
ADMIN_PORT=9901 # the image's HEALTHCHECK asks 127.0.0.1:9901, so the test config binds admin there
UID_EXPECTED=10001
MEMORY_LIMIT_MIB=512
STOP_LIMIT=${MTLS_PROXY_CT_STOP_LIMIT:-40}

log() { printf '[container-test %4ds] %s\n' "$((SECONDS - started))" "$*"; }

# --- 1. tools ------------------------------------------------------------------------------------------------------
need_apt=()
for tool in podman:podman runc:runc debootstrap:debootstrap openssl:openssl curl:curl; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need_apt+=("${tool#*:}")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

nofile=$(ulimit -n)
[ "$nofile" = unlimited ] && nofile=65536
LIMITS=(--ulimit "nofile=$nofile:$nofile" --ulimit nproc=4096:4096)
pm() { podman --runtime runc "$@"; }

# --- 2. stand-in base images ---------------------------------------------------------------------------------------
# The Debian mirror this machine's apt sources name for $SUITE (deb822 .sources first, then sources.list).
debian_mirror() {
  local uri=""
  if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
    uri=$(awk -v suite="$SUITE" 'BEGIN { RS = ""; FS = "\n" } {
        u = ""; s = 0
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { split($i, a, /[ \t]+/); u = a[2] }
          if ($i ~ /^Suites:/ && $i ~ ("[ \t]" suite "([ \t]|$)")) s = 1
        }
        if (s && u != "") { print u; exit }
      }' /etc/apt/sources.list.d/*.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(sed -E 's/\[[^]]*\]//' /etc/apt/sources.list \
      | awk -v suite="$SUITE" '$1 == "deb" && $3 == suite { print $2; exit }')
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

MIRROR=$(debian_mirror)
# Where a machine reaches the internet through a TLS-inspecting proxy, its own CAs are in
# /usr/local/share/ca-certificates; the stand-ins trust them too, or Maven could not download from Maven Central.
LOCAL_CAS=(/usr/local/share/ca-certificates/*.crt)
[ -e "${LOCAL_CAS[0]}" ] || LOCAL_CAS=()
standin_containerfile() { # $1 = base image, $2 = packages
  cat <<EOF
FROM $1
COPY local-ca/ /usr/local/share/ca-certificates/
RUN apt-get update -qq \\
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates $2 >/dev/null \\
    && update-ca-certificates --fresh >/dev/null && apt-get clean && rm -rf /var/lib/apt/lists/*
EOF
}
# Every input of the stand-ins goes into their tag, so a change to any of them builds new ones.
recipe_key=$( (printf '%s\n' "recipe 2" "$SUITE" "$MIRROR" "$(standin_containerfile base "$JDK_PACKAGES")" \
  "$(standin_containerfile base "$JRE_PACKAGES")"; cat "${LOCAL_CAS[@]}" /dev/null) | sha256sum | cut -c1-12)
BASE_IMAGE=$STANDIN_REPO/debian-minbase:$SUITE-$recipe_key
JDK_IMAGE=$STANDIN_REPO/jdk-maven:17-$recipe_key
JRE_IMAGE=$STANDIN_REPO/jre:17-$recipe_key

have_image() { pm image exists "$1"; }
if [ "${MTLS_PROXY_CT_REBUILD:-0}" != 1 ] && have_image "$JDK_IMAGE" && have_image "$JRE_IMAGE"; then
  log "stand-in base images cached: $JDK_IMAGE, $JRE_IMAGE"
else
  t0=$SECONDS
  if [ "${MTLS_PROXY_CT_REBUILD:-0}" = 1 ] || ! have_image "$BASE_IMAGE"; then
    log "debootstrap --variant=minbase $SUITE from $MIRROR"
    rootfs=$(mktemp -d /var/tmp/mtls-proxy-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    debootstrap --variant=minbase "$SUITE" "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 \
      || { tail -20 "$rootfs.log"; exit 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | pm import --quiet --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs" "$rootfs.log"
    trap - EXIT
  fi
  context=$(mktemp -d /tmp/mtls-proxy-standin.XXXXXX)
  mkdir "$context/local-ca"
  [ ${#LOCAL_CAS[@]} -eq 0 ] || cp "${LOCAL_CAS[@]}" "$context/local-ca/"
  for pair in "$JDK_IMAGE|$JDK_PACKAGES" "$JRE_IMAGE|$JRE_PACKAGES"; do
    log "building ${pair%%|*} (${pair#*|})"
    standin_containerfile "$BASE_IMAGE" "${pair#*|}" >"$context/Containerfile"
    pm build -q --network=host "${LIMITS[@]}" -t "${pair%%|*}" -f "$context/Containerfile" "$context" \
      >"$context/build.log" 2>&1 || { tail -30 "$context/build.log"; exit 1; }
  done
  rm -rf "$context"
  # Older stand-ins (another recipe) are no longer used by anything.
  pm images --format '{{.Repository}}:{{.Tag}}' | grep "^$STANDIN_REPO/" \
    | grep -v -e "-$recipe_key\$" | xargs -r podman rmi >/dev/null 2>&1 || true
  log "stand-in base images built in $((SECONDS - t0))s"
fi

# --- 3. build and run ----------------------------------------------------------------------------------------------
work=$(mktemp -d /tmp/mtls-proxy-container-test.XXXXXX)
container=mtls-proxy-container-test-$$
backend_pid=""
cleanup() {
  if [ -n "$backend_pid" ]; then kill "$backend_pid" 2>/dev/null || true; fi
  if [ "${MTLS_PROXY_CT_KEEP:-0}" = 1 ]; then
    log "kept $work and container $container"
  else
    pm rm -f -t 0 "$container" "$container-pinned" >/dev/null 2>&1 || true
    rm -rf "$work"
  fi
}
trap cleanup EXIT

t0=$SECONDS
log "podman build $IMAGE (BUILD_IMAGE=$JDK_IMAGE RUNTIME_IMAGE=$JRE_IMAGE)"
previous=$(pm image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
# --format docker: the OCI image format has no HEALTHCHECK. Unchanged inputs reuse every layer; changed sources
# rebuild from the Maven step, whose repository is a cache mount (/var/tmp/buildah-cache) that keeps downloads.
build_args=(--network=host --format docker "${LIMITS[@]}"
  --build-arg "BUILD_IMAGE=$JDK_IMAGE" --build-arg "RUNTIME_IMAGE=$JRE_IMAGE" -f Dockerfile)
pm build "${build_args[@]}" -t "$IMAGE" . >"$work/build.log" 2>&1 || { tail -40 "$work/build.log"; exit 1; }
# Keep what the next run reuses and nothing older: the build stage is tagged (all cached, about a second), so the
# superseded build stages are the only dangling ones with its label; the superseded image goes too.
pm build "${build_args[@]}" --target build -t "$IMAGE-build" . >>"$work/build.log" 2>&1
pm image prune -f --filter label=dev.mtlsproxy.stage=build >/dev/null 2>&1 || true
current=$(pm image inspect -f '{{.Id}}' "$IMAGE")
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
  pm rmi "$previous" >/dev/null 2>&1 || true
fi
log "image built in $((SECONDS - t0))s"

if ss -Htln "sport = :$ADMIN_PORT" | grep -q .; then
  echo "port $ADMIN_PORT is in use on this machine (a demo?); the container's admin listener needs it" >&2
  exit 1
fi

# A throwaway PKI: a CA, the proxy's server certificate, and two client certificates with SPIFFE IDs, one granted
# and one not. Keys are PKCS#8 (what the proxy reads), readable by the image's group only, as with Kubernetes fsGroup.
pki=$work/etc/tls
mkdir -p "$pki"
ossl() { openssl "$@" 2>>"$work/openssl.log"; }
ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/ca.key"
ossl req -new -key "$pki/ca.key" -subj "/CN=mtls-proxy container-test CA" -out "$work/ca.csr"
printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n' \
  >"$work/ca.ext"
ossl x509 -req -in "$work/ca.csr" -signkey "$pki/ca.key" -days 2 -sha256 -extfile "$work/ca.ext" -out "$pki/ca.pem"
leaf() { # name, subject CN, subjectAltName, extendedKeyUsage
  ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/$1.key"
  ossl req -new -key "$pki/$1.key" -subj "/CN=$2" -out "$work/$1.csr"
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\n%s\n%s\n' \
    "$4" "subjectAltName=$3" "authorityKeyIdentifier=keyid" >"$work/$1.ext"
  ossl x509 -req -in "$work/$1.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial -CAserial "$work/ca.srl" \
    -days 2 -sha256 -extfile "$work/$1.ext" -out "$pki/$1.pem"
}
leaf server localhost "DNS:localhost,IP:127.0.0.1" serverAuth
leaf orders orders "URI:spiffe://container-test.local/orders" clientAuth
leaf intruder intruder "URI:spiffe://container-test.local/intruder" clientAuth
rm "$pki/ca.key"
chgrp -R "$UID_EXPECTED" "$work/etc" && chmod 0750 "$work/etc" "$pki" && chmod 0640 "$pki"/*

# The backend, on the host: the container shares the host's network.
java deploy/container/TestBackend.java >"$work/backend.out" 2>&1 &
backend_pid=$!
wait_for() { # timeout-seconds description command...
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      echo "timed out after ${deadline}s waiting for $what" >&2
      return 1
    fi
    sleep 0.2
  done
}
wait_for 60 "the backend's port" grep -q '^port=' "$work/backend.out"
backend_port=$(sed -n 's/^port=//p' "$work/backend.out")

cat >"$work/etc/mtls-proxy.yaml" <<EOF
# deploy/container-test.sh: the container's config, mounted at /etc/mtls-proxy.
trustAnchors:
  test-ca: { caBundle: /etc/mtls-proxy/tls/ca.pem }
listeners:
  - name: public
    address: 127.0.0.1:0     # host network: loopback only, any free port (read back from the log)
    tls:
      certificate: /etc/mtls-proxy/tls/server.pem
      privateKey: /etc/mtls-proxy/tls/server.key
identities:
  orders: { spiffeId: "spiffe://container-test.local/orders" }
routes:
  - name: orders
    pathPrefix: /orders
    backend: host
    allow: [orders]
backends:
  host: { url: "http://127.0.0.1:$backend_port" }
admin:
  address: 127.0.0.1:$ADMIN_PORT
EOF
chmod 0640 "$work/etc/mtls-proxy.yaml" && chgrp "$UID_EXPECTED" "$work/etc/mtls-proxy.yaml"

# Read-only root, nothing writable but a /tmp tmpfs (exec: netty-tcnative loads its native library from there).
log "running $IMAGE as $container"
pm run -d --name "$container" --network=host "${LIMITS[@]}" \
  --read-only --read-only-tmpfs=false --tmpfs /tmp:rw,exec,nosuid,nodev,size=64m \
  --memory "${MEMORY_LIMIT_MIB}m" --cap-drop=ALL --security-opt no-new-privileges \
  -v "$work/etc:/etc/mtls-proxy:ro" "$IMAGE" >/dev/null 2>"$work/run.err" \
  || { cat "$work/run.err" >&2; exit 1; }

listening() { pm logs "$container" 2>&1 | grep -q 'event=listening listener=public'; }
if ! wait_for 90 "the proxy to listen" listening; then
  pm logs "$container" 2>&1 | tail -30
  exit 1
fi
port=$(pm logs "$container" 2>&1 | sed -n 's/.*event=listening listener=public address=[^ ]*:\([0-9]*\) .*/\1/p' | head -1)
wait_for 30 "/readyz" curl -fsS "http://127.0.0.1:$ADMIN_PORT/readyz"
log "proxy in the container listens on 127.0.0.1:$port, admin on 127.0.0.1:$ADMIN_PORT, backend 127.0.0.1:$backend_port"

# --- 4. checks -----------------------------------------------------------------------------------------------------
passed=0
failed=0
pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1: $2"; }
url=https://127.0.0.1:$port/orders/42
client() { # cert-name or "" -> writes "<status>" to stdout, body to $work/body, curl's exit code to $work/curl.rc
  local args=(--silent --show-error --max-time 10 --cacert "$pki/ca.pem" -o "$work/body" -w '%{http_code}')
  [ -n "$1" ] && args+=(--cert "$pki/$1.pem" --key "$pki/$1.key")
  local rc=0
  curl "${args[@]}" "$url" 2>"$work/curl.err" || rc=$?
  echo "$rc" >"$work/curl.rc"
}
metric_sum() { # sum of the samples of metric $1 whose labels contain every fragment in $2..
  local name=$1
  shift
  curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" | awk -v name="$name" -v n=$# -v frags="$*" '
    BEGIN { split(frags, f, " ") }
    $1 ~ ("^" name "({|$)") { ok = 1; for (i = 1; i <= n; i++) if (index($1, f[i]) == 0) ok = 0; if (ok) s += $NF }
    END { printf "%.0f\n", s }'
}

status=$(client orders)
if [ "$status" = 200 ] && grep -q 'spiffe://container-test.local/orders' "$work/body"; then
  pass "allowed-client-200 ($(head -c 200 "$work/body" | tr -d '\n'))"
else
  fail allowed-client-200 "status $status, curl exit $(cat "$work/curl.rc"), body: $(head -c 300 "$work/body" 2>/dev/null) $(cat "$work/curl.err")"
fi

status=$(client intruder)
if [ "$status" = 403 ]; then pass denied-client-403; else fail denied-client-403 "status $status, $(cat "$work/curl.err")"; fi

before=$(metric_sum mtls_proxy_tls_handshakes_total 'result="failure"' 'reason="no_certificate"')
status=$(client "")
after=$(metric_sum mtls_proxy_tls_handshakes_total 'result="failure"' 'reason="no_certificate"')
if [ "$status" = 000 ] && [ "$(cat "$work/curl.rc")" != 0 ] && [ "$after" -gt "$before" ]; then
  pass "no-certificate-refused (curl exit $(cat "$work/curl.rc"); no_certificate handshakes $before -> $after)"
else
  fail no-certificate-refused "status $status, curl exit $(cat "$work/curl.rc"), no_certificate handshakes $before -> $after"
fi

if curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" -o "$work/metrics" \
  && grep -q '^mtls_proxy_requests_total{.*decision="allow"' "$work/metrics" \
  && grep -q '^mtls_proxy_requests_total{.*decision="deny"' "$work/metrics"; then
  pass "metrics-answer (requests_total has the allowed and the denied request)"
else
  fail metrics-answer "$(head -c 300 "$work/metrics" 2>/dev/null)"
fi

# The heap comes from the container's memory limit (-XX:MaxRAMPercentage=50), not the machine's 24 GiB.
heap_mib=$(awk '/^jvm_memory_max_bytes\{.*area="heap"/ && $NF > 0 { s += $NF } END { printf "%d", s / 1048576 }' \
  "$work/metrics")
if [ "$heap_mib" -gt 0 ] && [ "$heap_mib" -le $((MEMORY_LIMIT_MIB / 2)) ]; then
  pass "heap-from-memory-limit (max heap ${heap_mib} MiB with a ${MEMORY_LIMIT_MIB} MiB limit)"
else
  fail heap-from-memory-limit "max heap ${heap_mib} MiB with a ${MEMORY_LIMIT_MIB} MiB limit"
fi

pid=$(pm inspect -f '{{.State.Pid}}' "$container")
# Direct buffers are capped at a quarter of the limit, so heap and buffers cannot fill it between them.
direct_expected=$((MEMORY_LIMIT_MIB * 1048576 / 4))
if tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qx -- "-XX:MaxDirectMemorySize=$direct_expected"; then
  pass "direct-memory-from-memory-limit (-XX:MaxDirectMemorySize=$direct_expected with a ${MEMORY_LIMIT_MIB} MiB limit)"
else
  fail direct-memory-from-memory-limit "$(tr '\0' ' ' <"/proc/$pid/cmdline")"
fi
uids=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$pid/status")
comm=$(cat "/proc/$pid/comm")
if [ "$uids" = "$UID_EXPECTED $UID_EXPECTED $UID_EXPECTED $UID_EXPECTED" ] && [ "$comm" = java ]; then
  pass "process-not-root (PID 1 in the container is $comm, real/effective/saved/fs UID $uids)"
else
  fail process-not-root "process $comm has UIDs $uids"
fi

if hc=$(pm healthcheck run "$container" 2>&1); then
  pass "healthcheck (the image's HEALTHCHECK: mtls-proxy health)"
else
  fail healthcheck "$hc"
fi

# shellcheck disable=SC2016 # a Go template, not shell
config=$(pm image inspect -f '{{.Config.User}} {{.Config.StopSignal}} {{range $p, $v := .Config.ExposedPorts}}{{$p}} {{end}}' \
  "$IMAGE")
if [ "$config" = "10001:10001 SIGTERM 8443/tcp 9901/tcp " ]; then
  pass "image-config (user, stop signal, ports: $config)"
else
  fail image-config "$config"
fi

# The class-data sharing archive trained at image build fits the image's JVM and jar: -Xshare:on turns any mismatch,
# which would otherwise only cost start-up time, into a failure to start, and our own classes come from the
# archive's top layer (without it they would be loaded from the jar).
cds_run=(pm run --rm --no-healthcheck "${LIMITS[@]}" --network=none --read-only
  --tmpfs /tmp:rw,exec,nosuid,nodev,size=64m -e "JAVA_OPTS=-Xshare:on -Xlog:class+load=info"
  -v "$work/etc:/etc/mtls-proxy:ro" "$IMAGE" validate --config /etc/mtls-proxy/mtls-proxy.yaml)
if cds=$("${cds_run[@]}" 2>&1) && grep -q 'dev.mtlsproxy.app.Main source: shared objects file (top)' <<<"$cds"; then
  pass "class-data-archive (starts with -Xshare:on; the app's classes come from the archive)"
else
  fail class-data-archive "$(echo "$cds" | grep -v 'class,load' | tail -5)"
fi

# SIGTERM (the image's STOPSIGNAL, which `podman stop` sends): the graceful drain must end with exit code 0 within
# the drain time; after STOP_LIMIT seconds podman kills it (137). The JVM's own default on SIGTERM is 143.
t0=$SECONDS
pm stop -t "$STOP_LIMIT" "$container" >/dev/null 2>&1 || true
exit_code=$(pm inspect -f '{{.State.ExitCode}}' "$container")
took=$((SECONDS - t0))
if [ "$exit_code" = 0 ]; then
  pass "sigterm-exit-0 (exit code 0 after ${took}s; limit ${STOP_LIMIT}s)"
else
  fail sigterm-exit-0 "exit code $exit_code after ${took}s (limit ${STOP_LIMIT}s); 143 means the JVM's default SIGTERM exit, before the graceful drain of issue #6"
fi

# Pinned event loops in the image as shipped: JNA's native library loads for the non-root user under a read-only
# root (it unpacks to the /tmp tmpfs), and in a one-CPU cpuset `cpuAffinity: auto` starts one loop on that CPU, which
# serves. The CPU is the host's last, so "the first CPU" would not pass by chance.
cpu=$(awk '/^Cpus_allowed_list/ { print $2 }' /proc/self/status | awk -F, '{ print $NF }' | awk -F- '{ print $NF }')
sed 's/^admin:/workers: { cpuAffinity: auto }\nadmin:/' "$work/etc/mtls-proxy.yaml" >"$work/etc/pinned.yaml"
chmod 0640 "$work/etc/pinned.yaml" && chgrp "$UID_EXPECTED" "$work/etc/pinned.yaml"
pm run -d --name "$container-pinned" --no-healthcheck --network=host "${LIMITS[@]}" --cpuset-cpus "$cpu" \
  --read-only --read-only-tmpfs=false --tmpfs /tmp:rw,exec,nosuid,nodev,size=64m --cap-drop=ALL \
  --security-opt no-new-privileges -v "$work/etc:/etc/mtls-proxy:ro" "$IMAGE" run --config /etc/mtls-proxy/pinned.yaml \
  >/dev/null 2>"$work/run-pinned.err" || cat "$work/run-pinned.err" >&2
pinned_listening() { pm logs "$container-pinned" 2>&1 | grep -q 'event=listening listener=public'; }
if wait_for 90 "the pinned proxy to listen" pinned_listening; then
  url=https://127.0.0.1:$(pm logs "$container-pinned" 2>&1 \
    | sed -n 's/.*event=listening listener=public address=[^ ]*:\([0-9]*\) .*/\1/p' | head -1)/orders/42
  status=$(client orders)
fi
loops=$(pm logs "$container-pinned" 2>&1 | grep -o 'event=event_loops.*' | head -1)
if [ "$loops" = "event=event_loops threads=1 cpus=$cpu yield_after=500us" ] && [ "${status:-}" = 200 ]; then
  pass "pinned-event-loops (cpuset $cpu, cpuAffinity auto: $loops; allowed client 200)"
else
  fail pinned-event-loops "cpuset $cpu: '${loops:-no event_loops line}', status ${status:-none}; $(pm logs "$container-pinned" 2>&1 | tail -5)"
fi
pm rm -f -t 0 "$container-pinned" >/dev/null 2>&1 || true

log "done in $((SECONDS - started))s"
echo "container-test: $passed passed, $failed failed"
[ "$failed" = 0 ]
