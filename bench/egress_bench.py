"""Benchmark the proxy's TLS inspection against a plain tunnel and a direct connection.

Usage: python bench/egress_bench.py [--runs N] [--keep-images]

One session, `bench-egress`, is applied in a throwaway repository and PAUDE_HOME (as in
bench/run.py), allowing a stand-in HTTPS server (started on the session's egress network
under test names, with the machine's test CA) twice: `tunnel.paude-bench.example` as a
plain name (a CONNECT tunnel) and `inspect.paude-bench.example` with a GET rule (squid
decrypts and checks every request). Each run then times, inside the containers (no
`podman exec` start-up in the figures), and in turn for each path:
(1) 100 small HTTPS requests, one curl each (a new connection and TLS handshake each);
(2) one 50 MB download;
from the agent through the proxy (tunnelled, inspected) and from a container on the egress
network straight to the server (direct). Target: inspected <= 1.5x tunnelled for both.
The table is printed and written to bench/results/egress-latest.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from common import source_revision, tool_version
from run import (  # bench/run.py: the same command, engine and cleanup helpers
    BenchError,
    Stats,
    bench_args,
    find_engine_dir,
    find_paude,
    interrupts_deferred,
    make_sandbox,
    paude_images,
    remove_labelled,
    remove_new_images,
    require_images,
    run,
    run_main,
)

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))  # the stand-in server lives with the tests
from tests.integration.egress_standin import start_server  # noqa: E402
from tests.integration.model_standin import standin_ca  # noqa: E402

RESULTS_FILE = BENCH_DIR / "results" / "egress-latest.json"
SESSION = "bench-egress"
SESSION_LABEL = f"paude.session={SESSION}"
AGENT = f"paude-{SESSION}-agent"
PROXY = f"paude-{SESSION}-proxy"
CONTROL = f"{SESSION}-direct"
SERVER = f"{SESSION}-server"
PEER = f"{SESSION}-mitmproxy"
PEER_IMAGE = "localhost/paude-bench-mitmproxy:bookworm"
PEER_PORT = 8080
# The peer's CA (mitmproxy makes its own at first start) and the stand-in's, for curl.
PEER_BUNDLE = "/peer-bundle.pem"
TUNNEL = "tunnel.paude-bench.example"
INSPECT = "inspect.paude-bench.example"
DEFAULT_BASE_IMAGE = "localhost/paude-base:bookworm"
SMALL_REQUESTS = 100
LARGE_BYTES = 50 * 1024 * 1024
TARGET = 1.5

# path -> (container, host, extra curl options)
PATHS = {"direct": (CONTROL, INSPECT, ""), "tunnelled": (AGENT, TUNNEL, ""),
         "inspected": (AGENT, INSPECT, ""),
         "mitmproxy": (CONTROL, INSPECT,
                       f"-x http://{PEER}:{PEER_PORT} --cacert {PEER_BUNDLE}")}
STEPS = {f"{kind}_{path}": f"({n}) {label}, {path}"
         for n, (kind, label) in enumerate((("small", f"{SMALL_REQUESTS} small requests"),
                                            ("large", "one 50 MB download")), start=1)
         for path in PATHS}

# Runs inside a container: prints the nanoseconds the loop took; fails on any non-2xx.
SMALL = ("start=$(date +%s%N); i=0; while [ $i -lt {n} ]; do "
         "curl -sSf {opts} -o /dev/null https://{host}/v1/item/$i || exit 1; i=$((i+1)); "
         "done; echo $(( $(date +%s%N) - start ))")
LARGE = ("start=$(date +%s%N); size=$(curl -sSf {opts} -o /dev/null -w '%{{size_download}}' "
         "https://{host}/v1/blob/{size}) || exit 1; [ \"$size\" = {size} ] || exit 1; "
         "echo $(( $(date +%s%N) - start ))")
PEER_CONTAINERFILE = """FROM {base}
RUN apt-get update && apt-get install -y --no-install-recommends mitmproxy \\
 && rm -rf /var/lib/apt/lists/*
"""


def definition(base_image: str) -> str:
    """paude.yaml: the stand-in's two names, one tunnelled and one inspected."""
    return (
        "version: 1\n"
        "defaults:\n"
        "  agent: {install: none, command: [bash]}\n"
        "  image:\n"
        f"    base: {base_image}\n"
        f"    ca_certificates: [{standin_ca()}]\n"
        "sessions:\n"
        f"  {SESSION}:\n"
        "    allowed_domains:\n"
        f"      - {TUNNEL}\n"
        f"      - {{host: {INSPECT}, methods: [GET], paths: [/v1/]}}\n"
    )


def in_container(container: str, script: str) -> float:
    """Seconds a timing script measured inside `container`."""
    result = run(["podman", "exec", container, "sh", "-c", script])
    return int(result.stdout.strip()) / 1e9


def one_run(index: int, total: int) -> dict[str, float]:
    """Time every step once, the three paths interleaved."""
    samples: dict[str, float] = {}
    for path, (container, host, opts) in PATHS.items():
        samples[f"small_{path}"] = in_container(
            container, SMALL.format(n=SMALL_REQUESTS, host=host, opts=opts))
    for path, (container, host, opts) in PATHS.items():
        samples[f"large_{path}"] = in_container(
            container, LARGE.format(host=host, size=LARGE_BYTES, opts=opts))
    shown = "  ".join(f"{key}={value:.3f}s" for key, value in samples.items())
    print(f"run {index}/{total}: {shown}", flush=True)
    return samples


def squid_build() -> str:
    """The proxy's squid: its version and build info, which says whether it is Debian's
    binary or the rebuild of scripts/build-proxy-base.sh."""
    text = run(["podman", "exec", PROXY, "/usr/sbin/squid", "-v"]).stdout.splitlines()
    version = text[0].removeprefix("Squid Cache: ") if text else "unknown"
    info = text[2].strip() if len(text) > 2 else ""
    return f"{version} ({info})" if info else version


def build_report(samples: dict[str, list[float]], *, base_image: str,
                 squid: str) -> dict[str, object]:
    """The JSON report: machine, raw samples, statistics and ratios."""
    stats = {key: Stats.of(values) for key, values in samples.items()}

    def ratio(a: str, b: str) -> float:
        return round(stats[a].median / stats[b].median, 2)

    ratios = {f"{kind}: inspected/tunnelled": ratio(f"{kind}_inspected", f"{kind}_tunnelled")
              for kind in ("small", "large")}
    ratios.update({f"{kind}: tunnelled/direct": ratio(f"{kind}_tunnelled", f"{kind}_direct")
                   for kind in ("small", "large")})
    ratios.update({f"{kind}: inspected/mitmproxy": ratio(f"{kind}_inspected",
                                                         f"{kind}_mitmproxy")
                   for kind in ("small", "large")})
    return {
        "schema": 1,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "runs": len(samples["small_direct"]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "podman": tool_version(["podman", "--version"]),
                    "paude_commit": source_revision(), "base_image": base_image,
                    "squid": squid},
        "steps": {key: {"label": STEPS[key], "samples": [round(v, 4) for v in values],
                        "median": round(stats[key].median, 4),
                        "min": round(stats[key].minimum, 4),
                        "max": round(stats[key].maximum, 4)}
                  for key, values in samples.items()},
        "ratios": ratios,
        "target": {"inspected/tunnelled": TARGET,
                   "met": all(v <= TARGET for k, v in ratios.items()
                              if k.endswith("inspected/tunnelled"))},
    }


def render_table(report: Mapping[str, object]) -> str:
    """The report as a plain-text table."""
    steps, ratios, machine, target = (report["steps"], report["ratios"], report["machine"],
                                      report["target"])
    assert isinstance(steps, dict) and isinstance(ratios, dict)
    assert isinstance(machine, dict) and isinstance(target, dict)
    lines = [f"HTTPS through the proxy: {report['runs']} runs, {machine['cpus']} CPUs, "
             f"{machine['podman']}", f"squid {machine.get('squid', 'unknown')}", "",
             f"{'step':<40}{'median':>9}{'min':>9}{'max':>9}"]
    for key, label in STEPS.items():
        row = steps[key]
        lines.append(f"{label:<40}{row['median']:>8.3f}s{row['min']:>8.3f}s{row['max']:>8.3f}s")
    lines += ["", "ratios of medians:"]
    for key, value in ratios.items():
        verdict = "" if not key.endswith("inspected/tunnelled") else (
            f"  (target <= {TARGET}x: {'met' if value <= TARGET else 'MISSED'})")
        lines.append(f"  {key:<30} {value:.2f}x{verdict}")
    return "\n".join(lines)


def start_peer(base_image: str, network: str, root: Path) -> None:
    """mitmproxy from the Debian archive on the egress network, trusting the stand-in; its
    own CA (made at first start) goes to the direct container's curl."""
    if run(["podman", "image", "exists", PEER_IMAGE], check=False).returncode != 0:
        context = root / "peer"
        context.mkdir()
        (context / "Containerfile").write_text(PEER_CONTAINERFILE.format(base=base_image),
                                               encoding="utf-8")
        run(["podman", "build", "-q", "-t", PEER_IMAGE, str(context)])
    run(["podman", "run", "--detach", "--name", PEER, "--label", SESSION_LABEL,
         "--network", network, "--volume", f"{standin_ca()}:/standin-ca.crt:ro", PEER_IMAGE,
         "mitmdump", "-q", "--listen-port", str(PEER_PORT),
         "--set", "ssl_verify_upstream_trusted_ca=/standin-ca.crt"])
    cert = "/root/.mitmproxy/mitmproxy-ca-cert.pem"
    for _ in range(100):
        if run(["podman", "exec", PEER, "test", "-s", cert], check=False).returncode == 0:
            break
        time.sleep(0.2)
    else:
        raise BenchError("mitmproxy did not make its CA within 20 s")
    bundle = run(["podman", "exec", PEER, "cat", cert]).stdout + standin_ca().read_text()
    (root / "peer-bundle.pem").write_text(bundle, encoding="utf-8")
    run(["podman", "cp", str(root / "peer-bundle.pem"), f"{CONTROL}:{PEER_BUNDLE}"])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    return bench_args(argv, __doc__,
                      keep_images_help="keep agent/proxy images the session's apply built")


def benchmark(args: argparse.Namespace) -> dict[str, object]:
    """Apply the session, start the stand-in and the direct client, measure, clean up."""
    base_image = os.environ.get("PAUDE_TEST_BASE_IMAGE") or DEFAULT_BASE_IMAGE
    paude = find_paude()
    engine_dir = find_engine_dir()
    require_images(base_image)
    if run(["podman", "ps", "--all", "--quiet", "--filter", f"label={SESSION_LABEL}"]).stdout:
        raise BenchError(f"containers labelled {SESSION_LABEL} already exist; the benchmark "
                         f"would remove them: destroy session {SESSION} first")
    images_before = paude_images()
    with tempfile.TemporaryDirectory(prefix="paude-egress-bench-") as tmp:
        root = Path(tmp)
        sandbox = make_sandbox(root, base_image=base_image, engine_dir=engine_dir,
                               paude=paude, session=SESSION)
        (sandbox.repo / "paude.yaml").write_text(definition(base_image), encoding="utf-8")
        try:
            with interrupts_deferred():
                run([paude, "apply", SESSION, "--yes"], env=sandbox.env, cwd=sandbox.repo)
            network = f"paude-{SESSION}-egress"
            start_server(SERVER, network, session=SESSION, folder=root / "certs",
                         aliases=(TUNNEL, INSPECT))
            run(["podman", "run", "--detach", "--name", CONTROL, "--label", SESSION_LABEL,
                 "--network", network, "--env", "SSL_CERT_FILE=/ca.crt", base_image,
                 "sleep", "infinity"])
            run(["podman", "cp", str(standin_ca()), f"{CONTROL}:/ca.crt"])
            start_peer(base_image, network, root)
            squid = squid_build()
            one_run(0, args.runs)  # warm-up: certificates generated, caches filled
            samples: dict[str, list[float]] = {key: [] for key in STEPS}
            for index in range(1, args.runs + 1):
                for key, value in one_run(index, args.runs).items():
                    samples[key].append(value)
        finally:
            run([paude, "destroy", SESSION, "--yes", "--delete-data", "--force"],
                env=sandbox.env, cwd=sandbox.repo, check=False)
            remove_labelled(SESSION_LABEL)
            if not args.keep_images:
                remove_new_images(images_before)
    return build_report(samples, base_image=base_image, squid=squid)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print and save its report."""
    return run_main(parse_args(argv), benchmark, render_table, RESULTS_FILE)


if __name__ == "__main__":
    sys.exit(main())
