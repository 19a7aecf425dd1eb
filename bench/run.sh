#!/usr/bin/env bash
# Benchmark: mtls-proxy against nginx and HAProxy, each terminating mutual TLS in front of the same plaintext
# backend, on this machine, in one run (issue #8). See docs/BENCHMARKS.md for what each scenario measures.
#
#   bench/run.sh                                  # everything, about 12 minutes on 2 cores
#   ROUNDS=1 SECONDS_PER_RUN=5 SERVER_WARMUP=20 STARTUP_ROUNDS=1 bench/run.sh   # a quick smoke run (~2 min)
#   TARGETS="ours nginx" SCENARIOS="keepalive handshake" bench/run.sh           # a subset
#   BASELINE_JAR=/tmp/base/proxy-app/target/mtls-proxy.jar bench/run.sh         # A/B: another build of ours too
#
# The knobs are the variables below, each with its default.
#
# Installs nginx, HAProxy, openssl and curl from Debian if missing (needs root), builds the proxy jar if missing and
# the load client (bench/loadgen) if missing or stale. All traffic goes to 127.0.0.1 only; every load run is bounded
# in time; every process started here is stopped at exit, and the throwaway PKI (private keys included) lives in a
# temporary directory that is deleted at exit. The report is printed and saved under bench/results/.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

ROUNDS=${ROUNDS:-3}                         # interleaved rounds per scenario; the report shows the median
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}      # measured window of a keep-alive or handshake run
UNTRUSTED_SECONDS=${UNTRUSTED_SECONDS:-5}   # measured window of an untrusted-CA run
WARMUP=${WARMUP:-3}                         # seconds of load before each measured window opens
SERVER_WARMUP=${SERVER_WARMUP:-90}          # seconds of load on our proxy (a JVM) before anything is measured,
                                            # in windows of 5 s (2 s under 30 s); no early exit (LoadGen.warmUp)
CONNECTIONS=${CONNECTIONS:-64}              # keep-alive connections
CONCURRENCY=${CONCURRENCY:-16}              # concurrent new connections in the handshake and untrusted runs
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-2000}  # idle mTLS connections held for the memory measurement (0: skip)
STARTUP_ROUNDS=${STARTUP_ROUNDS:-3}         # cold starts per server for start-up time (0: skip)
CLIENT_THREADS=${CLIENT_THREADS:-2}         # load client event loops
BASE_PORT=${BASE_PORT:-18600}               # backend +1, ours +2, nginx +3, HAProxy +4, our admin +5; each server's
                                            # listener with session resumption on: ours +6, nginx +7, HAProxy +8;
                                            # ours-base (BASELINE_JAR): +9, with resumption +10, its admin +11
BASELINE_JAR=${BASELINE_JAR:-}              # another build of our proxy, e.g. an older commit's jar: the target
                                            # "ours-base", run as ours is (same config, JVM flags, class-data
                                            # sharing; its own ports and log) and measured in the same rotation, so
                                            # that drift hits both builds alike; the default TARGETS then include it
BASELINE_REV=${BASELINE_REV:-}              # the baseline's commit, for the report; empty: that of the git tree
                                            # the jar lies in, if it lies in one
PROXY_JAVA_OPTS=${PROXY_JAVA_OPTS:-}        # JVM flags for our proxy; empty = the defaults `java -jar` gets
CDS=${CDS:-1}                               # 1: our JVM maps a class-data sharing archive trained here first, as
                                            # the container image does (Dockerfile); 0: plain `java -jar`
OURS_GROUPS=${OURS_GROUPS:-[X25519, P-256, P-384]}  # our listener's key exchange groups: X25519 first, as OpenSSL
                                            # 3.0 (nginx, HAProxy) negotiates, so the handshakes compare like for
                                            # like; "default" keeps ours post-quantum first (X25519MLKEM768)
BACKEND_TLS=${BACKEND_TLS:-0}               # 1: the backend speaks TLS 1.3 (a certificate from the bench CA) and
                                            # each proxy verifies it and keeps its connections alive; the plaintext
                                            # "backend" ceiling scenario is then skipped
NGINX_REUSEPORT=${NGINX_REUSEPORT:-0}       # 1: nginx's listener has `reuseport`, so the kernel spreads connections
                                            # over its workers; 0: as configured by default, the workers race for
                                            # each one, and one may take all 64 (docs/BENCHMARKS.md)
ACCESS_LOG=${ACCESS_LOG:-0}                 # 1: every server writes an access log line per request to a file of
                                            # its own in one log directory, each the same JSON fields as ours as
                                            # far as it has them (nginx log_format escape=json; HAProxy log-format
                                            # to stdout); 0: no access logs
NGINX_LOG_BUFFER=${NGINX_LOG_BUFFER:-}       # with ACCESS_LOG=1, e.g. 64k: nginx buffers its log lines (buffer=64k
                                            # flush=1s); empty: one write per line, nginx's default
OURS_YIELD_AFTER=${OURS_YIELD_AFTER:-}       # our workers.yieldAfter (e.g. 0s: never yield); empty: the default
OURS_TRANSPORT=${OURS_TRANSPORT:-}           # our workers.transport (epoll, io_uring, nio); empty: the default (auto)
AFFINITY=${AFFINITY:-0}                     # 1: every server pins its two workers to CPUs 0 and 1 (ours
                                            # workers.cpuAffinity: auto, nginx worker_cpu_affinity auto, HAProxy
                                            # cpu-map); 0: none is pinned, as each is configured by default
read -r -a PROXY_JVM <<<"$PROXY_JAVA_OPTS"

PROXY_JAR=$ROOT/proxy-app/target/mtls-proxy.jar
LOADGEN_DIR=$ROOT/bench/loadgen
LOADGEN_JAR=$LOADGEN_DIR/target/loadgen.jar
LOADGEN_JVM=(-Xms256m -Xmx1g -Dio.netty.leakDetection.level=disabled)

PORT_BACKEND=$((BASE_PORT + 1))
PORT_OURS=$((BASE_PORT + 2))
PORT_NGINX=$((BASE_PORT + 3))
PORT_HAPROXY=$((BASE_PORT + 4))
PORT_ADMIN=$((BASE_PORT + 5))
PORT_OURS_RESUME=$((BASE_PORT + 6))
PORT_NGINX_RESUME=$((BASE_PORT + 7))
PORT_HAPROXY_RESUME=$((BASE_PORT + 8))
PORT_BASE=$((BASE_PORT + 9))
PORT_BASE_RESUME=$((BASE_PORT + 10))
PORT_BASE_ADMIN=$((BASE_PORT + 11))
# Which servers to compare. Given explicitly, TARGETS is taken as it is: ours-base in it needs BASELINE_JAR, and a
# BASELINE_JAR without ours-base in it is refused rather than silently left out.
read -r -a TARGETS <<<"${TARGETS:-ours${BASELINE_JAR:+ ours-base} nginx haproxy}"
read -r -a SCENARIOS <<<"${SCENARIOS:-$([ "$BACKEND_TLS" = 1 ] || echo backend) keepalive handshake resume untrusted flood idle}"
if [ "$BACKEND_TLS" = 1 ]; then
  BACKEND_SCHEME=https
else
  BACKEND_SCHEME=http
fi

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
[[ "$BACKEND_TLS" != 1 || " ${SCENARIOS[*]} " != *" backend "* ]] \
  || die "the backend scenario is plaintext: leave it out with BACKEND_TLS=1"
[ ${#TARGETS[@]} -gt 0 ] || die "TARGETS is empty"
declare -A seen_target=()
for target in "${TARGETS[@]}"; do
  case $target in ours|ours-base|nginx|haproxy) ;; *) die "TARGETS: $target (expected: some of ours ours-base nginx haproxy)" ;; esac
  [ -z "${seen_target[$target]:-}" ] || die "TARGETS: $target given twice"
  seen_target[$target]=1
done
has_target() { [ -n "${seen_target[$1]:-}" ]; }
if has_target ours-base; then
  [ -n "$BASELINE_JAR" ] || die "TARGETS has ours-base: set BASELINE_JAR to the jar of the build to compare against"
  [ -f "$BASELINE_JAR" ] && [ -r "$BASELINE_JAR" ] || die "BASELINE_JAR: $BASELINE_JAR (expected: a readable jar)"
  BASELINE_JAR=$(realpath "$BASELINE_JAR")
elif [ -n "$BASELINE_JAR" ]; then
  die "BASELINE_JAR is set but TARGETS (${TARGETS[*]}) has no ours-base: add it, or unset BASELINE_JAR"
fi
if has_target ours-base && [ $((ROUNDS % ${#TARGETS[@]})) != 0 ]; then
  log "NOTE: ROUNDS=$ROUNDS is not a multiple of the ${#TARGETS[@]} targets, so the rotation does not put each first equally often"
fi

# ---------------------------------------------------------------------------------------------------------------
# Prerequisites
# ---------------------------------------------------------------------------------------------------------------
[ "$(uname -s)" = Linux ] || die "Linux only (epoll, /proc)"
command -v java >/dev/null || die "java 17+ is required"

need_apt=()
command -v nginx >/dev/null || need_apt+=(nginx)
command -v haproxy >/dev/null || need_apt+=(haproxy)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v curl >/dev/null || need_apt+=(curl)
command -v pgrep >/dev/null || need_apt+=(procps)
command -v ss >/dev/null || need_apt+=(iproute2)
if [ ${#need_apt[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing ${need_apt[*]}: install them, or run as root so this script can"
  log "installing ${need_apt[*]} from Debian"
  apt-get update -qq
  # policy-rc.d on containers keeps the packages' own services from starting; if one did, it listens on :80 only.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -f "$PROXY_JAR" ] || [ "${REBUILD:-0}" = 1 ]; then
  log "building the proxy jar"
  ./mvnw -q -B -DskipTests package
elif [ -n "$(find proxy-*/src proxy-*/pom.xml pom.xml -newer "$PROXY_JAR" -print -quit)" ]; then
  log "WARNING: sources are newer than $PROXY_JAR; REBUILD=1 rebuilds it first"
fi
if [ ! -f "$LOADGEN_JAR" ] || [ -n "$(find "$LOADGEN_DIR/src" "$LOADGEN_DIR/pom.xml" -newer "$LOADGEN_JAR" -print -quit)" ]; then
  log "building the load client"
  ./mvnw -f bench/loadgen/pom.xml -q -B package
fi

WORK=$(mktemp -d -t mtls-bench.XXXXXX)
chmod 700 "$WORK"
STARTED=()   # pids of every server this script started, stopped at exit by pid

cleanup() {
  local pid
  for pid in "${STARTED[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${STARTED[@]}"; do
    # Bounded wait, then a hard kill of that same pid only.
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The git tree a jar was built in (its proxy-app/target/ lies inside it), if any: where its commit and its own demo
# config come from.
tree_of() { git -C "$(dirname "$1")" rev-parse --show-toplevel 2>/dev/null || true; }

# The image build's training run, repeated here: the archive is only valid for this JVM and this jar path. Each
# build trains on its own tree's demo config when it has one, since an older build may not read today's.
# The demo keeps its PKI next to its config directory: each build gets a directory of its own.
train_cds() { # jar archive demo-config
  mkdir -p "$WORK/cds/$2/config"
  sed 's/127\.0\.0\.1:[0-9][0-9]*/127.0.0.1:0/' "$3" >"$WORK/cds/$2/config/demo.yaml"
  java "${PROXY_JVM[@]}" -XX:ArchiveClassesAtExit="$WORK/$2.jsa" -Xlog:cds=error -jar "$1" \
    demo --check --config "$WORK/cds/$2/config/demo.yaml" >"$WORK/cds/$2/train.log" 2>&1 \
    || die "the class-data sharing training run of $1 failed, exit $? (CDS=0 skips it): $(tail -5 "$WORK/cds/$2/train.log")"
}

# Our jars are copied so that a rebuild in a work tree during the run cannot change what is measured.
cp "$PROXY_JAR" "$WORK/mtls-proxy.jar"
BASE_JVM=("${PROXY_JVM[@]}")
if has_target ours-base; then
  cp -p "$BASELINE_JAR" "$WORK/mtls-proxy-base.jar"   # -p: the report gives the original's modification time
  base_tree=$(tree_of "$BASELINE_JAR")
  if [ -z "$BASELINE_REV" ] && [ -n "$base_tree" ]; then
    BASELINE_REV="$(git -C "$base_tree" rev-parse --short HEAD 2>/dev/null || echo unknown) (the tree the jar lies in$(git -C "$base_tree" diff --quiet HEAD -- proxy-core proxy-config proxy-app 2>/dev/null || echo ', + uncommitted changes'))"
  fi
  if cmp -s "$PROXY_JAR" "$BASELINE_JAR"; then
    log "NOTE: BASELINE_JAR has the same bytes as $PROXY_JAR: an A/A run, which shows the noise alone"
  fi
fi
if [ "$CDS" = 1 ]; then
  log "training our class-data sharing archive (demo --check, as the image build does)"
  train_cds "$WORK/mtls-proxy.jar" mtls-proxy "$ROOT/config/demo.yaml"
  if has_target ours-base; then
    log "training the baseline's class-data sharing archive"
    base_demo="$ROOT/config/demo.yaml"
    [ -n "$base_tree" ] && [ -f "$base_tree/config/demo.yaml" ] && base_demo="$base_tree/config/demo.yaml"
    train_cds "$WORK/mtls-proxy-base.jar" mtls-proxy-base "$base_demo"
    BASE_JVM=("-XX:SharedArchiveFile=$WORK/mtls-proxy-base.jsa" "${BASE_JVM[@]}")
  fi
  PROXY_JVM=("-XX:SharedArchiveFile=$WORK/mtls-proxy.jsa" "${PROXY_JVM[@]}")
fi

for port in "$PORT_BACKEND" "$PORT_OURS" "$PORT_NGINX" "$PORT_HAPROXY" "$PORT_ADMIN" "$PORT_OURS_RESUME" \
    "$PORT_NGINX_RESUME" "$PORT_HAPROXY_RESUME" \
    $(has_target ours-base && echo "$PORT_BASE $PORT_BASE_RESUME $PORT_BASE_ADMIN"); do
  if ss -Hltn "sport = :$port" | grep -q .; then
    die "port $port on this machine is in use; set BASE_PORT to a free range"
  fi
done

# ---------------------------------------------------------------------------------------------------------------
# PKI: ECDSA P-256, keys in PKCS#8 (our proxy reads only PKCS#8). Nothing here is ever printed.
# ---------------------------------------------------------------------------------------------------------------
PKI=$WORK/pki
mkdir -m 700 "$PKI"
mint_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
mint_ca() { # name subject
  mint_key "$PKI/$1.key"
  openssl req -x509 -new -key "$PKI/$1.key" -subj "$2" -days 2 -sha256 -out "$PKI/$1.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}
mint_leaf() { # name subject ca eku san
  mint_key "$PKI/$1.key"
  openssl req -new -key "$PKI/$1.key" -subj "$2" -out "$PKI/$1.csr" 2>/dev/null
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' \
    "$4" "$5" >"$PKI/$1.ext"
  openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/$3.pem" -CAkey "$PKI/$3.key" -set_serial "0x$(openssl rand -hex 8)" \
    -days 2 -sha256 -extfile "$PKI/$1.ext" -out "$PKI/$1.pem" 2>/dev/null
}
mint_ca ca "/O=bench/CN=bench CA"
mint_ca other-ca "/O=elsewhere/CN=other CA"
mint_leaf server "/O=bench/CN=localhost" ca serverAuth "DNS:localhost,IP:127.0.0.1"
mint_leaf backend "/O=bench/CN=backend" ca serverAuth "DNS:localhost,IP:127.0.0.1"
mint_leaf allowed "/O=bench/CN=allowed" ca clientAuth "URI:spiffe://bench.local/allowed"
mint_leaf denied "/O=bench/CN=denied" ca clientAuth "URI:spiffe://bench.local/denied"
# Claims the allowed identity, subject and SPIFFE ID alike, but from a CA nobody trusts.
mint_leaf untrusted "/O=bench/CN=allowed" other-ca clientAuth "URI:spiffe://bench.local/allowed"
grep -q "BEGIN PRIVATE KEY" "$PKI/allowed.key" || die "openssl did not write a PKCS#8 key"
cat "$PKI/server.pem" "$PKI/server.key" >"$PKI/server-bundle.pem"   # HAProxy wants certificate and key in one file

# ---------------------------------------------------------------------------------------------------------------
# Configurations: the same policy three ways (docs/BENCHMARKS.md lists the differences)
# ---------------------------------------------------------------------------------------------------------------
mkdir -p "$WORK/backend" "$WORK/nginx" "$WORK/haproxy" "$WORK/ours" "$WORK/ours-base" "$WORK/logs"

# The backend: nginx's own fast path, one worker, plaintext keep-alive (TLS 1.3 with BACKEND_TLS=1), a 3-byte body.
# Its own process tree, so its CPU is never counted as the nginx proxy's.
cat >"$WORK/backend/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/backend/nginx.pid;
events { worker_connections 8192; }
http {
  access_log off;
  default_type text/plain;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_body_temp_path $WORK/backend/body;
  proxy_temp_path $WORK/backend/proxy;
  fastcgi_temp_path $WORK/backend/fastcgi;
  uwsgi_temp_path $WORK/backend/uwsgi;
  scgi_temp_path $WORK/backend/scgi;
  server {
    listen 127.0.0.1:$PORT_BACKEND reuseport backlog=4096$([ "$BACKEND_TLS" = 1 ] && echo ' ssl');$([ "$BACKEND_TLS" = 1 ] && printf '\n    ssl_certificate %s;\n    ssl_certificate_key %s;\n    ssl_protocols TLSv1.3;' "$PKI/backend.pem" "$PKI/backend.key")
    location / { return 200 "ok\n"; }
  }
}
EOF

# Our configuration, for ours and for the baseline build alike: only the ports and the access log file differ.
write_ours_config() { # target port resume-port admin-port
  cat >"$WORK/$1/bench.yaml" <<EOF
trustAnchors:
  bench-ca: { caBundle: $PKI/ca.pem }
listeners:
  - name: bench
    address: 127.0.0.1:$2
    tls:
      certificate: $PKI/server.pem
      privateKey: $PKI/server.key$([ "$OURS_GROUPS" = default ] || printf '\n      groups: %s' "$OURS_GROUPS")
  # The same, with session resumption on (stateless TLS 1.3 tickets): the "resume" scenario.
  - name: bench-resume
    address: 127.0.0.1:$3
    tls:
      certificate: $PKI/server.pem
      privateKey: $PKI/server.key$([ "$OURS_GROUPS" = default ] || printf '\n      groups: %s' "$OURS_GROUPS")
      sessionResumption: tickets
identities:
  allowed:
    spiffeId: spiffe://bench.local/allowed
routes:
  - name: allowed
    pathPrefix: /allowed
    backend: origin
    allow: [allowed]
backends:
  origin:
    url: $BACKEND_SCHEME://127.0.0.1:$PORT_BACKEND$([ "$BACKEND_TLS" = 1 ] && printf '\n    tls:\n      serverCAs: [%s]' "$PKI/ca.pem")
accessLog:
  enabled: $([ "$ACCESS_LOG" = 1 ] && printf 'true\n  path: %s' "$WORK/logs/$1-access.log" || echo false)
EOF
  # The admin listener (metrics, health) moves off its default port so that a proxy running elsewhere on this machine
  # cannot collide with the benchmark's.
  printf 'admin:\n  address: 127.0.0.1:%s\n' "$4" >>"$WORK/$1/bench.yaml"
  printf 'workers:\n  cpuAffinity: %s\n' "$([ "$AFFINITY" = 1 ] && echo auto || echo none)" >>"$WORK/$1/bench.yaml"
  if [ -n "$OURS_YIELD_AFTER" ]; then
    printf '  yieldAfter: %s\n' "$OURS_YIELD_AFTER" >>"$WORK/$1/bench.yaml"
  fi
  if [ -n "$OURS_TRANSPORT" ]; then
    printf '  transport: %s\n' "$OURS_TRANSPORT" >>"$WORK/$1/bench.yaml"
  fi
}
write_ours_config ours "$PORT_OURS" "$PORT_OURS_RESUME" "$PORT_ADMIN"
if has_target ours-base; then
  write_ours_config ours-base "$PORT_BASE" "$PORT_BASE_RESUME" "$PORT_BASE_ADMIN"
fi

# nginx cannot read URI SANs (no \$ssl_client_san before njs), so it allows the allowed client by its exact subject DN.
cat >"$WORK/nginx/allowed.conf" <<'EOF'
if ($ssl_client_s_dn != "CN=allowed,O=bench") { return 403; }
proxy_http_version 1.1;
proxy_set_header Connection "";
proxy_set_header Host $http_host;
proxy_set_header X-Client-DN $ssl_client_s_dn;
proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
proxy_set_header X-Forwarded-Proto https;
EOF
echo "proxy_pass $BACKEND_SCHEME://origin;" >>"$WORK/nginx/allowed.conf"
if [ "$BACKEND_TLS" = 1 ]; then
  # Verified as ours and HAProxy verify it: the bench CA, the name localhost; sessions reused on new connections.
  printf 'proxy_ssl_protocols TLSv1.3;\nproxy_ssl_trusted_certificate %s;\nproxy_ssl_verify on;\nproxy_ssl_name localhost;\nproxy_ssl_session_reuse on;\n' \
    "$PKI/ca.pem" >>"$WORK/nginx/allowed.conf"
fi
# Access log lines with our fields, as JSON (nginx has no decision variable: the status stands in for it). The
# differences that remain: the time has seconds, not microseconds; the fingerprint is SHA-1, not SHA-256.
cat >"$WORK/nginx/log.conf" <<'EOF'
map $status $mtls_identity { 403 ""; default allowed; }
map $status $mtls_decision { 403 deny; default allow; }
log_format mtls escape=json '{"time":"$time_iso8601","connection":"$connection","client":"$remote_addr:$remote_port",'
  '"identity":"$mtls_identity","peer":"$ssl_client_s_dn","fingerprint":"$ssl_client_fingerprint","route":"allowed",'
  '"rule":"allow:allowed","decision":"$mtls_decision","method":"$request_method","path":"$uri","status":$status,'
  '"bytesIn":$request_length,"bytesOut":$body_bytes_sent,"durationMicros":$request_time,"backend":"$upstream_addr",'
  '"tlsVersion":"$ssl_protocol","cipher":"$ssl_cipher","tlsGroup":"$ssl_curve"}';
EOF
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 2;$([ "$AFFINITY" = 1 ] && printf '\nworker_cpu_affinity auto;')
worker_rlimit_nofile 65536;
pid $WORK/nginx/nginx.pid;
events { worker_connections 16384; }
http {
$([ "$ACCESS_LOG" = 1 ] && printf '  include %s;\n  access_log %s mtls%s;' "$WORK/nginx/log.conf" "$WORK/logs/nginx-access.log" "${NGINX_LOG_BUFFER:+ buffer=$NGINX_LOG_BUFFER flush=1s}" || echo '  access_log off;')
  default_type text/plain;
  keepalive_requests 10000000;
  keepalive_timeout 60s;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  upstream origin {
    server 127.0.0.1:$PORT_BACKEND;
    keepalive 64;
    keepalive_requests 10000000;
  }
  server {
    listen 127.0.0.1:$PORT_NGINX ssl backlog=4096$([ "$NGINX_REUSEPORT" = 1 ] && echo ' reuseport');
    include $WORK/nginx/server.conf;
    ssl_session_cache off;
    ssl_session_tickets off;
  }
  # The same, with session resumption on: tickets (their keys made once, by the master, so each worker takes the
  # other's), no server-side session cache, as ours. The "resume" scenario.
  server {
    listen 127.0.0.1:$PORT_NGINX_RESUME ssl backlog=4096$([ "$NGINX_REUSEPORT" = 1 ] && echo ' reuseport');
    include $WORK/nginx/server.conf;
    ssl_session_cache none;
    ssl_session_tickets on;
  }
}
EOF
cat >"$WORK/nginx/server.conf" <<EOF
server_name localhost;
ssl_certificate $PKI/server.pem;
ssl_certificate_key $PKI/server.key;
ssl_client_certificate $PKI/ca.pem;
ssl_verify_client on;
ssl_verify_depth 5;
ssl_protocols TLSv1.2 TLSv1.3;
ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305;
ssl_prefer_server_ciphers on;
# TLS 1.3: AES-128-GCM first, as BoringSSL (ours) picks it; OpenSSL's default would pick AES-256-GCM.
ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;
location = /allowed { include $WORK/nginx/allowed.conf; }
location /allowed/ { include $WORK/nginx/allowed.conf; }
location / { return 403; }
EOF

# Our fields again, as far as HAProxy 2.6 has them (no key exchange group; time in seconds; SHA-1 fingerprint; the
# request counter for a connection id). Its stdout goes to a file in the log directory.
HAPROXY_LOG_FORMAT='{"time":"%[date,utime(%Y-%m-%dT%H:%M:%SZ)]","connection":"%rt","client":"%ci:%cp","identity":"allowed","peer":"%[ssl_c_s_dn]","fingerprint":"%[ssl_c_sha1,hex]","route":"allowed","rule":"allow:allowed","decision":"allow","method":"%HM","path":"%HP","status":%ST,"bytesIn":%U,"bytesOut":%B,"durationMicros":%Ta,"backend":"%si:%sp","tlsVersion":"%sslv","cipher":"%sslc","tlsGroup":null}'
# HAProxy 2.6 has no fetch for URI SANs either (no ssl_c_san): it allows the allowed client by its subject CN.
cat >"$WORK/haproxy/haproxy.cfg" <<EOF
global
  nbthread 2$([ "$AFFINITY" = 1 ] && printf '\n  cpu-map auto:1/1-2 0-1')$([ "$ACCESS_LOG" = 1 ] && printf '\n  log stdout format raw local0 info')
  maxconn 8000
  tune.ssl.cachesize 0
  ssl-default-bind-options ssl-min-ver TLSv1.2
  ssl-default-bind-ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305
  ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
defaults
  mode http$([ "$ACCESS_LOG" = 1 ] && printf '\n  log global\n  log-format %s' "'$HAPROXY_LOG_FORMAT'")
  timeout connect 5s
  timeout client 60s
  timeout server 30s
  timeout http-request 10s
  timeout http-keep-alive 60s
  http-reuse always
frontend mtls
  bind 127.0.0.1:$PORT_HAPROXY ssl crt $PKI/server-bundle.pem ca-file $PKI/ca.pem verify required no-tls-tickets
  # The same, with session resumption on: tickets, no session cache (tune.ssl.cachesize 0), as ours. "resume".
  bind 127.0.0.1:$PORT_HAPROXY_RESUME ssl crt $PKI/server-bundle.pem ca-file $PKI/ca.pem verify required
  maxconn 8000
  acl allowed_path path /allowed
  acl allowed_path path_beg /allowed/
  acl allowed_client ssl_c_s_dn(CN) -m str allowed
  http-request deny deny_status 403 unless allowed_path allowed_client
  http-request set-header X-Client-DN %[ssl_c_s_dn]
  http-request set-header X-Forwarded-Proto https
  option forwardfor
  default_backend origin
backend origin
  server origin 127.0.0.1:$PORT_BACKEND$([ "$BACKEND_TLS" = 1 ] && echo " ssl verify required ca-file $PKI/ca.pem verifyhost localhost ssl-min-ver TLSv1.3")
EOF

nginx -t -q -e "$WORK/nginx/test.log" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" || die "nginx config: $(cat "$WORK/nginx/test.log")"
haproxy -c -q -f "$WORK/haproxy/haproxy.cfg" || die "haproxy config invalid"
java -jar "$WORK/mtls-proxy.jar" validate --config "$WORK/ours/bench.yaml" >/dev/null 2>"$WORK/ours/validate.log" \
  || die "our config: $(cat "$WORK/ours/validate.log")"
if has_target ours-base; then
  java -jar "$WORK/mtls-proxy-base.jar" validate --config "$WORK/ours-base/bench.yaml" >/dev/null \
      2>"$WORK/ours-base/validate.log" \
    || die "the baseline jar does not take the bench config (a setting it predates?): $(cat "$WORK/ours-base/validate.log")"
fi

# ---------------------------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------------------------
declare -A PID   # target -> main pid (nginx: the master)

start_server() { # target
  case $1 in
    backend) nginx -e "$WORK/backend/error.log" -p "$WORK/backend" -c "$WORK/backend/nginx.conf" -g 'daemon off;' \
               >>"$WORK/backend/out.log" 2>&1 & ;;
    nginx)   nginx -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' \
               >>"$WORK/nginx/out.log" 2>&1 & ;;
    haproxy) haproxy -db -f "$WORK/haproxy/haproxy.cfg" >>"$([ "$ACCESS_LOG" = 1 ] && echo "$WORK/logs/haproxy-access.log" || echo "$WORK/haproxy/out.log")" 2>&1 & ;;
    ours)    java "${PROXY_JVM[@]}" -jar "$WORK/mtls-proxy.jar" run --config "$WORK/ours/bench.yaml" \
               >>"$WORK/ours/out.log" 2>&1 & ;;
    ours-base) java "${BASE_JVM[@]}" -jar "$WORK/mtls-proxy-base.jar" run --config "$WORK/ours-base/bench.yaml" \
               >>"$WORK/ours-base/out.log" 2>&1 & ;;
  esac
  PID[$1]=$!
  STARTED+=("$!")
}

stop_server() { # target
  local pid=${PID[$1]}
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local kept=() p
  for p in "${STARTED[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
  STARTED=("${kept[@]}")
}

port_of() { case $1 in backend) echo "$PORT_BACKEND" ;; ours) echo "$PORT_OURS" ;; ours-base) echo "$PORT_BASE" ;; nginx) echo "$PORT_NGINX" ;; haproxy) echo "$PORT_HAPROXY" ;; esac; }
resume_port_of() { case $1 in ours) echo "$PORT_OURS_RESUME" ;; ours-base) echo "$PORT_BASE_RESUME" ;; nginx) echo "$PORT_NGINX_RESUME" ;; haproxy) echo "$PORT_HAPROXY_RESUME" ;; esac; }

# HTTP status a client gets for a path; 000 when there is no HTTP response at all (refused handshake).
status() { # target client path [port]
  local port
  port=${4:-$(port_of "$1")}
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 --resolve "localhost:$port:127.0.0.1" \
    --cacert "$PKI/ca.pem" ${2:+--cert "$PKI/$2.pem" --key "$PKI/$2.key"} "https://localhost:$port$3" || true
}

# Polls until the allowed client gets a 200; prints the milliseconds since $2 (ns). Bounded: 30 s.
wait_ready() { # target start_ns
  local deadline=$(($(date +%s) + 30))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    kill -0 "${PID[$1]}" 2>/dev/null || die "$1 exited during start-up; log: $(tail -5 "$WORK/$1/out.log" 2>/dev/null)"
    if [ "$(status "$1" allowed /allowed)" = 200 ]; then
      echo $((($(date +%s%N) - $2) / 1000000))
      return 0
    fi
    sleep 0.01
  done
  die "$1 did not serve a 200 within 30 s; log: $(tail -20 "$WORK/$1/out.log" 2>/dev/null)"
}

# The pids whose CPU time counts as the server's: the main process and its children (nginx workers).
pids_of() { # target
  local main=${PID[$1]}
  { echo "$main"; pgrep -P "$main" || true; } | paste -sd, -
}

RESULTS=$WORK/results.txt
: >"$RESULTS"
info() { printf 'info %s %s\n' "$1" "$2" >>"$RESULTS"; }

start_server backend
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT_BACKEND") 2>/dev/null && break; sleep 0.05; done
[ "$(curl -s --max-time 2 --cacert "$PKI/ca.pem" "$BACKEND_SCHEME://127.0.0.1:$PORT_BACKEND/")" = ok ] \
  || die "backend not serving"

# Start-up: cold starts, process start to the first 200 for the allowed client (curl polling every ~10 ms, so the
# resolution is some 10-20 ms). Rounds in rotated order across the servers, as the load rounds are, so that no
# server always starts first or right after the same other one. Then one more start of each stays up for the load.
if [ "$STARTUP_ROUNDS" -gt 0 ]; then
  log "start-up time, $STARTUP_ROUNDS cold starts each"
fi
for round in $(seq 1 "$STARTUP_ROUNDS"); do
  for i in "${!TARGETS[@]}"; do
    target=${TARGETS[(i + round - 1) % ${#TARGETS[@]}]}
    t0=$(date +%s%N)
    start_server "$target"
    ms=$(wait_ready "$target" "$t0")
    echo "result scenario=startup target=$target round=$round ms=$ms" >>"$RESULTS"
    log "startup $target round $round: ${ms} ms"
    stop_server "$target"
  done
done
for target in "${TARGETS[@]}"; do
  start_server "$target"
  wait_ready "$target" "$(date +%s%N)" >/dev/null
done

# Behaviour check before any measurement: the same answers from all of them, or the comparison is meaningless.
# nginx completes the handshake with a client whose certificate fails and answers 400 over HTTP (its documented
# behaviour for ssl_verify_client on); ours and HAProxy abort the handshake, so there is no HTTP status (000).
for target in "${TARGETS[@]}"; do
  expected="200 403 000 000"
  [ "$target" = nginx ] && expected="200 403 400 400"
  for port in "$(port_of "$target")" "$(resume_port_of "$target")"; do
    got="$(status "$target" allowed /allowed "$port") $(status "$target" denied /allowed "$port") $(status "$target" untrusted /allowed "$port") $(status "$target" "" /allowed "$port")"
    [ "$got" = "$expected" ] \
      || die "$target on port $port: allowed/denied/untrusted/no-cert got '$got' (expected: $expected)"
  done
done
log "behaviour check passed: allowed 200, denied 403, untrusted CA and no certificate refused, by each server, on both its listeners"

# ---------------------------------------------------------------------------------------------------------------
# Machine and versions
# ---------------------------------------------------------------------------------------------------------------
info date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
info cpu "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
info memory "$(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
info kernel "$(uname -r)"
# shellcheck source=/dev/null
info os "$(. /etc/os-release && echo "$PRETTY_NAME")"
info nginx "$(nginx -v 2>&1 | sed 's/^nginx version: //')"
info haproxy "$(haproxy -v | head -1 | awk '{print $3}')"
info openssl "$(openssl version) (used by nginx and HAProxy)"
info java "$(java -version 2>&1 | head -1)"
info mtls-proxy "jar built $(date -u -r "$PROXY_JAR" +%Y-%m-%dT%H:%MZ) in a tree at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- proxy-core proxy-config proxy-app 2>/dev/null || echo ' + uncommitted changes'), JVM flags: ${PROXY_JAVA_OPTS:-defaults}, key exchange groups: $OURS_GROUPS, class-data sharing: $([ "$CDS" = 1 ] && echo "archive trained by demo --check" || echo "JDK default only"), TLS: $(grep -o -m1 'BoringSSL[^"]*' "$WORK/ours/out.log" | head -1 || echo '?')"
if has_target ours-base; then
  info ours-base "the baseline build of mtls-proxy: jar $BASELINE_JAR, modified $(date -u -r "$WORK/mtls-proxy-base.jar" +%Y-%m-%dT%H:%MZ), sha256 $(sha256sum "$WORK/mtls-proxy-base.jar" | cut -c1-12)$(cmp -s "$WORK/mtls-proxy.jar" "$WORK/mtls-proxy-base.jar" && echo ' (the same bytes as ours: an A/A run)'), commit ${BASELINE_REV:-unknown (BASELINE_REV names it)}; the same config, JVM flags and class-data sharing as ours, TLS: $(grep -o -m1 'BoringSSL[^"]*' "$WORK/ours-base/out.log" | head -1 || echo '?')"
fi
flags=$(java "${PROXY_JVM[@]}" -XX:+PrintFlagsFinal -version 2>/dev/null)
info ours-jvm "max heap $(awk '$2 == "MaxHeapSize" {printf "%d MiB", $4 / 1048576}' <<<"$flags"), $(awk '$4 == "true" && $2 ~ /^Use(G1|Parallel|Serial|Z|Shenandoah)GC$/ {print $2}' <<<"$flags")"
info load-client "Netty 4.2.18 + $(java -jar "$LOADGEN_JAR" engine), $CLIENT_THREADS event loops, same machine"
# Other work on the machine skews every number; each round also reports it ("other load").
busy_before=$(awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
sleep 2
busy_after=$(awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
busy_pct=$(awk -v a="$busy_before" -v b="$busy_after" 'BEGIN {split(a, x, " "); split(b, y, " "); printf "%d", 100 * (y[1] - x[1]) / (y[2] - x[2])}')
info "machine-busy-before-load" "${busy_pct}% of all cores over 2 s with the servers idle"
[ "$busy_pct" -le 10 ] || log "WARNING: the machine is ${busy_pct}% busy before any load: results will be noisy"
info backend "nginx, one worker, $([ "$BACKEND_TLS" = 1 ] && echo "TLS 1.3 (ECDSA P-256 certificate from the bench CA), verified by each proxy" || echo plaintext)"
info access-logs "$([ "$ACCESS_LOG" = 1 ] && echo "on: one JSON line per request with the same fields, each server to its own file in a log directory no server watches; nginx $([ -n "$NGINX_LOG_BUFFER" ] && echo "buffer=$NGINX_LOG_BUFFER flush=1s" || echo "unbuffered (its default)"), ours a 64 KiB buffer flushed when its writer has caught up, HAProxy a write per line to stdout" || echo "off for every server")"
info ours-yield-after "${OURS_YIELD_AFTER:-default (500us)}"
info ours-transport "${OURS_TRANSPORT:-default (auto: epoll)}"
info cpu-affinity "$([ "$AFFINITY" = 1 ] && echo "each server's two workers pinned to CPUs 0 and 1; the load client and backend are not pinned" || echo "none: the kernel places every thread")"
info session-resumption "off on the listeners of every scenario but resume; resume uses a second listener of each server with stateless TLS 1.3 tickets and no server-side session cache (ours sessionResumption: tickets; nginx ssl_session_tickets on, ssl_session_cache none; HAProxy tickets, tune.ssl.cachesize 0), and a client that offers a session each listener gave it"
info nginx-listener "2 workers, $([ "$NGINX_REUSEPORT" = 1 ] && echo "reuseport: the kernel spreads connections over them" || echo "no reuseport: the workers race for each connection")"
info parameters "rounds=$ROUNDS window=${SECONDS_PER_RUN}s untrusted-window=${UNTRUSTED_SECONDS}s warmup=${WARMUP}s keepalive-connections=$CONNECTIONS handshake-concurrency=$CONCURRENCY idle-connections=$IDLE_CONNECTIONS"

# ---------------------------------------------------------------------------------------------------------------
# Load: idle memory on the fresh servers, warm-up, then the measured scenarios, rounds interleaved
# ---------------------------------------------------------------------------------------------------------------
# One load-client JVM runs everything: its own JIT warm-up is paid once, during the servers' warm-up, and never
# measured. Within a scenario the servers take turns, round after round in rotated order (ours, nginx, HAProxy;
# nginx, HAProxy, ours; ...), so that drift (other work on the machine, thermal) hits all of them alike.
specs=()
warm=()
resume_ports=()
for target in "${TARGETS[@]}"; do
  specs+=(--target "$target:$(port_of "$target"):$(pids_of "$target")")
  resume_ports+=("$target:$(resume_port_of "$target")")
  # A JVM compiles its hot paths under load: ours gets a longer warm-up than the C servers, which need none.
  if [[ "$target" = ours* ]]; then warm+=("$target:$SERVER_WARMUP"); else warm+=("$target:10"); fi
done
scenarios=$(IFS=,; echo "${SCENARIOS[*]}")
[ "$IDLE_CONNECTIONS" -gt 0 ] || { scenarios=${scenarios//idle/}; scenarios=${scenarios//,,/,}; scenarios=${scenarios%,}; }
log "load: warm-up ($(IFS=,; echo "${warm[*]}") seconds), then $scenarios; $ROUNDS rounds of ${SECONDS_PER_RUN}s windows"
mkdir -p "$ROOT/bench/results"
stamp=$(date +%Y%m%d-%H%M%S)
# A guard against a hung load client, scaled to the run: twice what the warm-ups and windows add up to (a fixed
# 20 minutes cut a four-server run with ROUNDS=4 short in its last scenario).
warm_total=0
for w in "${warm[@]}"; do warm_total=$((warm_total + ${w##*:})); done
n_scenarios=$(tr ',' '\n' <<<"$scenarios" | grep -c .)
load_timeout=$((600 + 2 * (warm_total + ROUNDS * ${#TARGETS[@]} * n_scenarios * (SECONDS_PER_RUN + WARMUP + 5))))
timeout "$load_timeout" java "${LOADGEN_JVM[@]}" -jar "$LOADGEN_JAR" "${specs[@]}" \
    --backend "backend:$PORT_BACKEND:$(pids_of backend)" \
    --ca "$PKI/ca.pem" --cert "$PKI/allowed.pem" --key "$PKI/allowed.key" \
    --untrusted-cert "$PKI/untrusted.pem" --untrusted-key "$PKI/untrusted.key" \
    --resume-ports "$(IFS=,; echo "${resume_ports[*]}")" --warm "$(IFS=,; echo "${warm[*]}")" --scenarios "$scenarios" --rounds "$ROUNDS" \
    --connections "$CONNECTIONS" --concurrency "$CONCURRENCY" --idle-connections "$IDLE_CONNECTIONS" \
    --threads "$CLIENT_THREADS" --warmup "$WARMUP" --duration "$SECONDS_PER_RUN" \
    --untrusted-duration "$UNTRUSTED_SECONDS" --clk-tck "$(getconf CLK_TCK)" \
    2>>"$WORK/loadgen.log" \
  | while read -r line; do
      echo "$line" >>"$RESULTS"
      log "$(tr ' ' '\n' <<<"$line" | grep -E '^(warmup|result|scenario|target|round|rate|p50_us|p99_us|cpu_us_per_op|non200|errors|accepted|opened|pss_after_kib|pss_kib_per_conn)(=|$)' | paste -sd' ' -)"
    done \
  || { cp "$WORK/loadgen.log" "$ROOT/bench/results/$stamp-loadgen.log" 2>/dev/null
       cp "$RESULTS" "$ROOT/bench/results/$stamp-partial.txt" 2>/dev/null # rounds that finished still count
       die "the load client failed (a timeout of ${load_timeout}s ends it with 124); log kept in bench/results/$stamp-loadgen.log, first error: $(grep -m1 -E 'Exception|Error' "$WORK/loadgen.log")"; }

# ---------------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------------
for target in "${TARGETS[@]}"; do
  kill -0 "${PID[$target]}" 2>/dev/null || die "$target died during the run; log: $(tail -20 "$WORK/$target/out.log")"
done
cp "$RESULTS" "$ROOT/bench/results/$stamp.txt"
java -jar "$LOADGEN_JAR" report "$RESULTS" | tee "$ROOT/bench/results/$stamp.md"
# Anything a build of our proxy logged at WARN or above during the run is worth a look.
for target in ours ours-base; do
  if grep -E -q '(WARN|ERROR)' "$WORK/$target/out.log" 2>/dev/null; then
    log "$target logged warnings or errors (first 20 kept in bench/results/$stamp-$target.log):"
    grep -E '(WARN|ERROR)' "$WORK/$target/out.log" | head -20 | tee "$ROOT/bench/results/$stamp-$target.log" >&2
  fi
done
log "saved bench/results/$stamp.md and the raw lines in bench/results/$stamp.txt"
