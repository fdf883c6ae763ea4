#!/usr/bin/env python3
"""Instructions per proxied request, Sluice vs nginx, counted by valgrind's callgrind.

Wall-clock CPU figures swing by tens of percent on shared VMs; instruction counts do not. Each
proxy runs under callgrind in front of the same nginx `return 200` backend; one keep-alive client
sends SMALL and then LARGE requests, the totals are read after each batch with callgrind_control,
and (large - small) / (LARGE - SMALL) is the per-request cost with start-up cancelled out.
User space only: the kernel's share (syscalls, loopback TCP) is not in these numbers.

    benches/instructions.py [--sluice target/release/sluice] [--mirror] [--requests 2000]
                            [--floor target/release/examples/pingora_floor]
                            [--annotate N]   # also print each proxy's top N functions
    benches/instructions.py --mirror --compare --only sluice   # mirrored, with and without shadow diff
    benches/instructions.py --mirror --post-bytes 65536        # mirrored 64 KiB POSTs
    benches/instructions.py --sluice target/debug/sluice --requests 300 \
                            --check benches/instructions-budget.json [--bless]

--check is the regression guard CI runs: Sluice alone, plain and then mirrored, each compared with
the budget for the binary's build profile (the directory it was built in: target/debug or
target/release); it fails when either grows more than the budget's tolerance (10 %) over it.
--bless writes the measured figures as the new budget: lower it in the commit that earns it.

--floor adds Pingora's own floor: a `ProxyHttp` that only picks the upstream, on Pingora's own
server (gateway/examples/pingora_floor.rs; build it with
`cargo build --release -p sluice-gateway --example pingora_floor`).

Needs valgrind and nginx (apt: valgrind nginx-light); run.sh installs nginx.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SMALL = 500


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"instructions: process exited early (status {proc.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"instructions: nothing listens on {port} after {timeout}s")


def nginx_conf(d, listen, upstream=None, mirror=None):
    if upstream is None:
        location = "return 200 ok;"
        extra = ""
    else:
        location = (
            "proxy_pass http://primary; proxy_http_version 1.1; proxy_set_header Connection \"\";"
        )
        extra = f"upstream primary {{ server 127.0.0.1:{upstream}; keepalive 64; }}\n"
        if mirror is not None:
            location = "mirror /__mirror; mirror_request_body on; " + location
            extra += f"upstream mirror {{ server 127.0.0.1:{mirror}; keepalive 64; }}\n"
    mirror_loc = (
        "location = /__mirror { internal; proxy_pass http://mirror$request_uri; "
        "proxy_http_version 1.1; proxy_set_header Connection \"\"; }"
        if mirror is not None
        else ""
    )
    return f"""daemon off; master_process off; worker_processes 1;
pid {d}/nginx.pid; error_log {d}/error.log error;
events {{ worker_connections 1024; }}
http {{ access_log off; keepalive_requests 1000000;
client_body_temp_path {d}/b; proxy_temp_path {d}/p; fastcgi_temp_path {d}/f;
uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;
{extra}server {{ listen 127.0.0.1:{listen}; location / {{ {location} }} {mirror_loc} }} }}
"""


MIRROR_POLICY = """---
apiVersion: sluice.dev/v1alpha1
kind: MirrorPolicy
metadata: {name: compare, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: bench}]
  compare: {percent: 100, status: true, body: true}
"""


def sluice_yaml(listen, upstream, mirror=None, compare=False):
    mirror_filter = (
        f"""    filters:
    - type: RequestMirror
      requestMirror:
        backendRef: {{name: mirror, port: 80}}
"""
        if mirror is not None
        else ""
    )
    services = ""
    for name, port in [("primary", upstream)] + ([("mirror", mirror)] if mirror else []):
        services += f"""---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec: {{ports: [{{name: http, port: 80}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}
  namespace: default
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
ports: [{{name: http, port: {port}}}]
endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]
"""
    return f"""apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: sluice}}
spec: {{controllerName: sluice.dev/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: bench, namespace: default}}
spec:
  gatewayClassName: sluice
  listeners: [{{name: http, protocol: HTTP, port: {listen}}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: bench, namespace: default}}
spec:
  parentRefs: [{{name: bench}}]
  rules:
  - backendRefs: [{{name: primary, port: 80}}]
{mirror_filter}{services}{MIRROR_POLICY if compare else ""}"""


class Client:
    """One keep-alive HTTP/1.1 connection; reads each response to its Content-Length."""

    def __init__(self, port, body_bytes=0):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buf = b""
        if body_bytes:
            self.req = (
                b"POST /bench HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: instructions\r\n"
                + f"Content-Length: {body_bytes}\r\n\r\n".encode()
                + b"x" * body_bytes
            )
        else:
            self.req = b"GET /bench HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: instructions\r\n\r\n"

    def get(self, n):
        req = self.req
        for _ in range(n):
            self.sock.sendall(req)
            while b"\r\n\r\n" not in self.buf:
                self.recv()
            head, _, rest = self.buf.partition(b"\r\n\r\n")
            status = head.split(b" ", 2)[1]
            if status != b"200":
                sys.exit(f"instructions: got {head.splitlines()[0]!r}")
            m = re.search(rb"(?i)content-length:\s*(\d+)", head)
            length = int(m.group(1)) if m else 0
            while len(rest) < length:
                self.recv()
                rest = self.buf.partition(b"\r\n\r\n")[2]
            self.buf = rest[length:]

    def recv(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            sys.exit("instructions: connection closed by the proxy")
        self.buf += chunk


# Request body size for every measured request (0: GET); set from --post-bytes.
BODY_BYTES = 0


def measure(name, cmd, port, requests, workdir, annotate=0, env=None):
    out = os.path.join(workdir, f"{name}.cg")
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no"] + cmd,
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(workdir, f"{name}.log"), "w"),
        env=env,
    )
    try:
        wait_port(port, proc, timeout=120)
        client = Client(port, BODY_BYTES)
        client.get(50)  # warm: connection pools, lazy statics, first snapshot index
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], capture_output=True)
        client.get(SMALL)
        subprocess.run(["callgrind_control", "-d", "small", str(proc.pid)], capture_output=True)
        client.get(requests)
        subprocess.run(["callgrind_control", "-d", "large", str(proc.pid)], capture_output=True)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    small = large = None
    for f in os.listdir(workdir):
        if not f.startswith(f"{name}.cg."):
            continue
        path = os.path.join(workdir, f)
        text = open(path).read()
        m = re.search(r"^summary:\s+(\d+)", text, re.M)
        if m is None:
            continue
        trigger = re.search(r"^desc: Trigger: .*?(small|large)", text, re.M)
        if trigger and trigger.group(1) == "small":
            small = (int(m.group(1)), path)
        elif trigger and trigger.group(1) == "large":
            large = (int(m.group(1)), path)
    if small is None or large is None:
        sys.exit(f"instructions: no callgrind dumps for {name} in {workdir}")
    # Each dump holds the counts since the previous one: the large batch's dump alone is
    # `requests` requests; the small batch checks the per-request figure is stable.
    per_small = small[0] / SMALL
    per_large = large[0] / requests
    if annotate:
        ann = subprocess.run(
            ["callgrind_annotate", "--threshold=100", large[1]], capture_output=True, text=True
        ).stdout
        # A mid-run dump charges the frames still on the stack (main, the runtime's loop) with
        # everything: those lines say 100 % and are not where the time goes.
        lines = [
            l for l in ann.splitlines()
            if re.match(r"^\s*[\d,]+ \(", l) and "(100.0%)" not in l
        ]
        print(f"\n{name}: top {annotate} functions (self, {requests} requests)")
        for l in lines[:annotate]:
            print("  " + l.strip()[:160])
    return per_small, per_large


def measure_sluice(binary, name, backend_port, mirror_port, requests, work, annotate=0, compare=False):
    port = free_port()
    config = os.path.join(work, f"{name}.yaml")
    open(config, "w").write(sluice_yaml(port, backend_port, mirror_port, compare))
    env = dict(os.environ, RUST_LOG="warn")
    cmd = [binary, "--config", config, "--threads", "1",
           "--admin-address", f"127.0.0.1:{free_port()}"]
    return measure(name, cmd, port, requests, work, annotate, env)


def start_backends(nginx, ports, work):
    backends = []
    for port in ports:
        d = os.path.join(work, f"backend-{port}")
        os.makedirs(d)
        conf = os.path.join(d, "nginx.conf")
        open(conf, "w").write(nginx_conf(d, port))
        p = subprocess.Popen([nginx, "-p", d, "-c", conf], stderr=subprocess.DEVNULL)
        backends.append(p)
        wait_port(port, p)
    return backends


def stop_backends(backends):
    for p in backends:
        p.send_signal(signal.SIGQUIT)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def build_profile(binary):
    """`debug` or `release`: the target directory the binary was built in."""
    profile = os.path.basename(os.path.dirname(os.path.abspath(binary)))
    if profile not in ("debug", "release"):
        sys.exit(f"instructions: cannot tell the build profile of {binary} (expected target/debug or target/release)")
    return profile


def check_budget(args):
    """The CI regression guard: plain and mirrored Sluice against the committed budget."""
    profile = build_profile(args.sluice)
    try:
        budget = json.load(open(args.check))
    except FileNotFoundError:
        budget = {}
    except ValueError as e:
        sys.exit(f"instructions: {args.check} is not valid JSON: {e}")
    tolerance = float(budget.get("tolerance", 0.10))
    work = tempfile.mkdtemp(prefix="sluice-instr-")
    backend_port, mirror_port = free_port(), free_port()
    backends = start_backends(args.nginx, [backend_port, mirror_port], work)
    measured = {}
    try:
        measured["plain"] = measure_sluice(args.sluice, "plain", backend_port, None, args.requests, work)[1]
        measured["mirrored"] = measure_sluice(
            args.sluice, "mirrored", backend_port, mirror_port, args.requests, work
        )[1]
    finally:
        stop_backends(backends)
    if args.bless:
        budget["tolerance"] = tolerance
        budget[profile] = {mode: round(v) for mode, v in measured.items()}
        with open(args.check, "w") as f:
            json.dump(budget, f, indent=2, sort_keys=True)
            f.write("\n")
        print(f"instructions: wrote the {profile} budget to {args.check}: {budget[profile]}")
        return
    limits = budget.get(profile)
    if not isinstance(limits, dict):
        sys.exit(f"instructions: {args.check} has no {profile!r} budget; measure one with --bless")
    failed = []
    print(f"| {profile} build | instructions per request | budget | ratio |")
    print("|---|---:|---:|---:|")
    for mode, value in measured.items():
        limit = limits.get(mode)
        if not isinstance(limit, (int, float)) or limit <= 0:
            sys.exit(f"instructions: {args.check} has no {profile}.{mode} budget; measure one with --bless")
        ratio = value / limit
        print(f"| {mode} | {value / 1000:.1f} k | {limit / 1000:.1f} k | {ratio:.3f} |")
        if ratio > 1 + tolerance:
            failed.append(f"{mode}: {value / 1000:.1f} k instructions per request, "
                          f"{(ratio - 1) * 100:.1f} % over the budget of {limit / 1000:.1f} k")
    if failed:
        sys.exit("instructions: over budget (more than {:.0f} %):\n  {}\n"
                 "Find what grew with --annotate 30; if the growth is wanted, re-bless with --bless."
                 .format(tolerance * 100, "\n  ".join(failed)))
    print(f"instructions: within {tolerance * 100:.0f} % of the {profile} budget ({args.check})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sluice", default="target/release/sluice")
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--mirror", action="store_true", help="every request also mirrored")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--annotate", type=int, default=0)
    ap.add_argument("--floor", help="the pingora_floor example binary")
    ap.add_argument("--only", choices=["sluice", "nginx", "floor"])
    ap.add_argument("--post-bytes", type=int, default=0,
                    help="POST a body of this many bytes instead of GET (e.g. 65536)")
    ap.add_argument("--compare", action="store_true",
                    help="with --mirror: also Sluice with a MirrorPolicy comparing every copy (shadow diff)")
    ap.add_argument("--check", metavar="BUDGET_JSON", help="regression guard: Sluice against this budget")
    ap.add_argument("--bless", action="store_true", help="with --check: write the measured figures as the budget")
    args = ap.parse_args()
    for tool in ["valgrind", "callgrind_control"]:
        if shutil.which(tool) is None:
            sys.exit(f"instructions: {tool} is not installed (apt: valgrind)")
    if args.check:
        check_budget(args)
        return
    if args.bless:
        sys.exit("instructions: --bless goes with --check")
    global BODY_BYTES
    BODY_BYTES = max(args.post_bytes, 0)
    if args.compare and not args.mirror:
        sys.exit("instructions: --compare goes with --mirror (a comparison needs a mirrored copy)")

    work = tempfile.mkdtemp(prefix="sluice-instr-")
    backend_port = free_port()
    mirror_port = free_port() if args.mirror else None
    backends = start_backends(args.nginx, [backend_port] + ([mirror_port] if mirror_port else []), work)
    results = {}
    try:
        if args.only in (None, "nginx"):
            port = free_port()
            d = os.path.join(work, "nginx-proxy")
            os.makedirs(d)
            conf = os.path.join(d, "nginx.conf")
            open(conf, "w").write(nginx_conf(d, port, backend_port, mirror_port))
            results["nginx"] = measure(
                "nginx", [args.nginx, "-p", d, "-c", conf], port, args.requests, work, args.annotate
            )
        if args.floor and args.only in (None, "floor") and not args.mirror:
            port = free_port()
            cmd = [args.floor, f"127.0.0.1:{port}", f"127.0.0.1:{backend_port}"]
            results["pingora floor"] = measure("floor", cmd, port, args.requests, work, args.annotate)
        if args.only in (None, "sluice"):
            results["sluice"] = measure_sluice(
                args.sluice, "sluice", backend_port, mirror_port, args.requests, work, args.annotate
            )
        if args.compare:
            results["sluice, compared"] = measure_sluice(
                args.sluice, "compared", backend_port, mirror_port, args.requests, work,
                args.annotate, compare=True,
            )
    finally:
        stop_backends(backends)
    mode = ("mirrored" if args.mirror else "plain") + (f", POST {BODY_BYTES} B" if BODY_BYTES else "")
    print(f"\n| proxy ({mode}) | instructions per request | over {SMALL} | × nginx |")
    print("|---|---:|---:|---:|")
    base = results.get("nginx", (None, None))[1]
    for name, (small, large) in results.items():
        ratio = f"{large / base:.2f}" if base else "–"
        print(f"| {name} | {large / 1000:.1f} k | {small / 1000:.1f} k | {ratio} |")
    print(f"\n(callgrind dumps in {work})")


if __name__ == "__main__":
    main()
