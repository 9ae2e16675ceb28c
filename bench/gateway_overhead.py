"""What the gateway adds to a model call: the same requests sent to a fake OpenAI-compatible
upstream directly and through ``POST /v1/chat/completions`` (API-key auth, project and provider
resolution, the usage record), as whole responses and as streams, at concurrency 1 and 32.

    .venv/bin/python bench/gateway_overhead.py [--requests N] [--workers W[,W...]]

Self-contained: it starts a fast fake upstream (``bench/fast_upstream.py``, its own process), the
embedded PostgreSQL and Valkey under ``.data/bench`` (never the developer's ``.data``; a
``DATABASE_URL``/``REDIS_URL`` in the environment is ignored), migrates, creates a project, a
``write`` API key and a default provider pointing at the fake, runs the API with uvicorn in a
subprocess, measures, checks that every gateway call left exactly one usage record, and stops
everything it started.

Added latency is the gateway's percentile minus the direct percentile (``gateway pX - direct
pX``), measured with the same client, body and upstream, in alternating blocks so that drift hits
both alike. Streams are timed to the end of the stream; time to the first body byte is reported
too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import DATA_DIR, REPO, django_setup, stop_embedded

MODEL = "gpt-4o-mini"
UPSTREAM_KEY = "sk-bench-upstream"


# --- measurement --------------------------------------------------------------------------


@dataclass
class Sample:
    latencies: list[float] = field(default_factory=list)  # seconds, to the end of the response
    ttfb: list[float] = field(default_factory=list)  # seconds, to the first body bytes (streams)
    elapsed: float = 0.0  # wall-clock seconds spent in this target's blocks
    count: int = 0

    def rps(self) -> float:
        return self.count / self.elapsed if self.elapsed else 0.0


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of ``values`` (seconds), in milliseconds."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1] * 1000


def pcts(values: list[float]) -> tuple[float, float, float]:
    return percentile(values, 50), percentile(values, 95), percentile(values, 99)


class Failure(RuntimeError):
    pass


def request_body(stream: bool) -> bytes:
    body: dict = {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are a helpful support agent."},
            {"role": "user", "content": "Hello! Where is my order #1234? It was due yesterday."},
        ],
        "temperature": 0.2,
        "max_tokens": 64,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()


async def one_request(client, url: str, headers: dict, body: bytes, stream: bool, sample: Sample) -> None:
    import httpx2

    try:
        await _one_request(client, url, headers, body, stream, sample)
    except httpx2.HTTPError as exc:
        raise Failure(f"{url}: {type(exc).__name__}: {exc}") from exc


async def _one_request(client, url: str, headers: dict, body: bytes, stream: bool, sample: Sample) -> None:
    started = time.perf_counter()
    if not stream:
        response = await client.post(url, content=body, headers=headers)
        done = time.perf_counter()
        if response.status_code != 200 or b'"usage"' not in response.content:
            raise Failure(f"{url}: {response.status_code} {response.text[:300]}")
        sample.latencies.append(done - started)
        return
    first = None
    tail = b""
    async with client.stream("POST", url, content=body, headers=headers) as response:
        if response.status_code != 200:
            await response.aread()
            raise Failure(f"{url}: {response.status_code} {response.text[:300]}")
        async for data in response.aiter_raw():
            if first is None and data:
                first = time.perf_counter()
            tail = (tail + data)[-64:]
    done = time.perf_counter()
    if b"[DONE]" not in tail:
        raise Failure(f"{url}: the stream did not end with [DONE]: {tail!r}")
    sample.latencies.append(done - started)
    sample.ttfb.append((first or done) - started)


async def run_block(client, url, headers, body, stream, n: int, concurrency: int, sample: Sample | None) -> None:
    """``n`` requests, at most ``concurrency`` in flight; ``sample=None`` for a warm-up."""
    target = sample or Sample()
    remaining = n

    async def worker():
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await one_request(client, url, headers, body, stream, target)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
    if sample is not None:
        sample.elapsed += time.perf_counter() - started
        sample.count += n


async def measure(
    *, direct_url: str, gateway_url: str, api_key: str, stream: bool, concurrency: int, requests: int, warmup: int
) -> tuple[Sample, Sample]:
    """Direct and gateway samples, after a warm-up of each, in alternating blocks."""
    import httpx2

    body = request_body(stream)
    common = {"Content-Type": "application/json"}
    direct_headers = {**common, "Authorization": f"Bearer {UPSTREAM_KEY}"}
    gateway_headers = {**common, "Authorization": f"Bearer {api_key}"}
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timeout = httpx2.Timeout(30.0)
    direct, gateway = Sample(), Sample()
    async with (
        httpx2.AsyncClient(limits=limits, timeout=timeout) as direct_client,
        httpx2.AsyncClient(limits=limits, timeout=timeout) as gateway_client,
    ):
        for client, url, headers in (
            (direct_client, direct_url, direct_headers),
            (gateway_client, gateway_url, gateway_headers),
        ):
            await run_block(client, url, headers, body, stream, warmup, concurrency, None)
        # Alternate blocks (five of each) so that drift, GC and neighbours hit both alike.
        blocks = 5
        for i in range(blocks):
            n = requests // blocks + (1 if i < requests % blocks else 0)
            await run_block(direct_client, direct_url, direct_headers, body, stream, n, concurrency, direct)
            await run_block(gateway_client, gateway_url, gateway_headers, body, stream, n, concurrency, gateway)
    return direct, gateway


async def measure_direct(*, url: str, stream: bool, concurrency: int, requests: int, warmup: int) -> Sample:
    import httpx2

    body = request_body(stream)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {UPSTREAM_KEY}"}
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    sample = Sample()
    async with httpx2.AsyncClient(limits=limits, timeout=httpx2.Timeout(30.0)) as client:
        await run_block(client, url, headers, body, stream, warmup, concurrency, None)
        await run_block(client, url, headers, body, stream, requests, concurrency, sample)
    return sample


# --- processes ----------------------------------------------------------------------------


def tree_cpu(root: int | None) -> float:
    """CPU seconds (user + system) used so far by process ``root`` and its live descendants."""
    if root is None:
        return 0.0
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0.0)
        todo.extend(child for child, parent in parents.items() if parent == pid)
    return total


def postgres_pid() -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((DATA_DIR / "postgres" / "postmaster.pid").read_text().split()[0])
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_upstream(impl: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.fast_upstream", "--impl", impl],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        stop_process(proc)
        raise SystemExit(f"the fake upstream did not start: {line!r}")
    return proc, int(line.split()[1])


def start_api(workers: int, env: dict) -> tuple[subprocess.Popen, int]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "config.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True)
    wait_healthy(proc, f"http://127.0.0.1:{port}/healthz")
    return proc, port


def wait_healthy(proc: subprocess.Popen, url: str, timeout: float = 60) -> None:
    import httpx2

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"uvicorn exited with {proc.returncode} before it answered {url}")
        with contextlib.suppress(httpx2.HTTPError):
            if httpx2.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    stop_process(proc)
    raise SystemExit(f"uvicorn did not answer {url} within {timeout:.0f}s")


def stop_process(proc: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM the process we started (uvicorn stops its own workers), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- Django: the data to call with --------------------------------------------------------


def create_fixtures(upstream_base: str):
    from agents.models import Provider
    from projects.models import APIKey, Project
    from projects.services import apikey_create

    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    project = Project.objects.create(name=f"bench {stamp}")
    created = apikey_create(project=project, name="bench", scopes=[APIKey.Scope.WRITE])
    Provider.objects.create(
        project=project,
        name="fake",
        kind=Provider.Kind.OPENAI,
        base_url=f"{upstream_base}/v1",
        api_key=UPSTREAM_KEY,
        default_chat_model=MODEL,
        is_default=True,
    )
    return project, created.raw


def usage_count(project, expected: int | None = None, wait: float = 5.0) -> int:
    """The project's usage records; waits a little for ``expected`` (writes may trail the answer)."""
    from usage.models import UsageRecord

    deadline = time.monotonic() + wait
    while True:
        count = UsageRecord.objects.filter(project=project).count()
        if expected is None or count >= expected or time.monotonic() > deadline:
            return count
        time.sleep(0.1)


def cpu_busy(seconds: float = 2.0) -> float:
    """The machine's CPU use over ``seconds`` (0..1), from /proc/stat: others' load before we start."""

    def snapshot() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait

    try:
        total0, idle0 = snapshot()
        time.sleep(seconds)
        total1, idle1 = snapshot()
    except OSError:
        return float("nan")
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
    )


# --- the run ------------------------------------------------------------------------------


@dataclass
class Row:
    mode: str
    concurrency: int
    workers: int
    direct: Sample
    gateway: Sample
    api_cpu_ms: float = 0.0  # uvicorn CPU per gateway request (all workers), warm-up included
    db_cpu_ms: float = 0.0  # PostgreSQL CPU per gateway request
    upstream_cpu_ms: float = 0.0  # fake upstream CPU per request (direct and gateway alike)


def fmt(values: tuple[float, ...]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def print_tables(rows: list[Row]) -> None:
    print()
    print("Latency to the end of the response, ms (p50 / p95 / p99); added = gateway pX - direct pX")
    print()
    print(
        "| mode | conc | workers | direct p50/p95/p99 | gateway p50/p95/p99 | added p50/p95/p99 "
        "| direct req/s | gateway req/s |"
    )
    print("|---|---:|---:|---|---|---|---:|---:|")
    for r in rows:
        d, g = pcts(r.direct.latencies), pcts(r.gateway.latencies)
        added = tuple(b - a for a, b in zip(d, g, strict=True))
        print(
            f"| {r.mode} | {r.concurrency} | {r.workers} | {fmt(d)} | {fmt(g)} | **{fmt(added)}** "
            f"| {r.direct.rps():.0f} | {r.gateway.rps():.0f} |"
        )
    print()
    print("CPU per request, ms (from /proc: less sensitive than latency to other load on the machine)")
    print()
    print("| mode | conc | workers | API (uvicorn) / gateway call | PostgreSQL / gateway call | upstream / call |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r.mode} | {r.concurrency} | {r.workers} | {r.api_cpu_ms:.2f} | {r.db_cpu_ms:.2f} "
            f"| {r.upstream_cpu_ms:.2f} |"
        )
    streams = [r for r in rows if r.mode == "stream"]
    if streams:
        print()
        print("Streams, time to the first body byte, ms (p50 / p95 / p99)")
        print()
        print("| conc | workers | direct TTFB | gateway TTFB | added TTFB |")
        print("|---:|---:|---|---|---|")
        for r in streams:
            d, g = pcts(r.direct.ttfb), pcts(r.gateway.ttfb)
            added = tuple(b - a for a, b in zip(d, g, strict=True))
            print(f"| {r.concurrency} | {r.workers} | {fmt(d)} | {fmt(g)} | {fmt(added)} |")


def verdict(rows: list[Row]) -> None:
    print()
    for r in rows:
        if r.concurrency != 1:
            continue
        d, g = pcts(r.direct.latencies), pcts(r.gateway.latencies)
        p50, p95 = g[0] - d[0], g[1] - d[1]
        ok = p50 <= 3 and p95 <= 8
        print(
            f"target (c=1, {r.mode}): added p50 {p50:.2f} ms <= 3 and p95 {p95:.2f} ms <= 8: "
            f"{'met' if ok else 'MISSED'}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, help="requests per target and mode (default: 500 at c=1, 2000 at c=32)")
    parser.add_argument(
        "--workers", default="1,2", help="uvicorn worker counts to run, comma-separated (default 1,2; c=1 runs on 1)"
    )
    parser.add_argument("--concurrency", default="1,32", help="comma-separated (default 1,32)")
    parser.add_argument("--modes", default="json,stream", help="json, stream or both (default)")
    parser.add_argument("--warmup", type=int, default=50, help="warm-up requests per target, mode and concurrency")
    parser.add_argument(
        "--direct-only",
        action="store_true",
        help="measure the fake upstream alone (no Django, no database): compare --upstream fast and threading",
    )
    parser.add_argument(
        "--upstream",
        choices=["fast", "threading"],
        default="fast",
        help="fast: bench/fast_upstream.py; threading: tests/fake_openai.py",
    )
    args = parser.parse_args(argv)
    workers = [int(w) for w in args.workers.split(",")]
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    modes = [m.strip() for m in args.modes.split(",")]

    print(f"machine: {machine()}")
    busy = cpu_busy()
    print(f"CPU already in use before the run: {busy:.0%} (load average {os.getloadavg()[0]:.2f})")
    if busy > 0.15:
        print("WARNING: the machine is busy; figures will be noisy and latencies inflated", file=sys.stderr)
    upstream, upstream_port = start_upstream(args.upstream)
    upstream_base = f"http://127.0.0.1:{upstream_port}"
    print(f"fake upstream ({args.upstream}) on {upstream_base}")
    api = None
    rows: list[Row] = []
    if args.direct_only:
        try:
            for c in concurrencies:
                for mode in modes:
                    n = args.requests or (500 if c == 1 else 2000)
                    sample = asyncio.run(
                        measure_direct(
                            url=f"{upstream_base}/v1/chat/completions",
                            stream=mode == "stream",
                            concurrency=c,
                            requests=n,
                            warmup=max(args.warmup, 2 * c),
                        )
                    )
                    print(
                        f"  {mode:6} c={c:<3} direct p50/p95/p99 {fmt(pcts(sample.latencies))} ms, "
                        f"{sample.rps():.0f} req/s"
                    )
        finally:
            stop_process(upstream)
        return 0
    try:
        django_setup(unset=("API_KEY_CACHE_SECONDS",))
        from django.conf import settings

        project, api_key = create_fixtures(upstream_base)
        env = {
            **os.environ,
            "DATABASE_URL": settings.DATABASE_URL,
            "REDIS_URL": settings.REDIS_URL,
        }
        gateway_calls = 0
        for w in workers:
            runs = [c for c in concurrencies if (c == 1 and w == min(workers)) or c > 1]
            if not runs:
                continue
            api, api_port = start_api(w, env)
            gateway_url = f"http://127.0.0.1:{api_port}/v1/chat/completions"
            print(f"uvicorn, {w} worker(s), on port {api_port}")
            for c in runs:
                for mode in modes:
                    n = args.requests or (500 if c == 1 else 2000)
                    warmup = max(args.warmup, 2 * c)
                    t0 = time.perf_counter()
                    cpu0 = (tree_cpu(api.pid), tree_cpu(postgres_pid()), tree_cpu(upstream.pid))
                    direct, gateway = asyncio.run(
                        measure(
                            direct_url=f"{upstream_base}/v1/chat/completions",
                            gateway_url=gateway_url,
                            api_key=api_key,
                            stream=mode == "stream",
                            concurrency=c,
                            requests=n,
                            warmup=warmup,
                        )
                    )
                    cpu1 = (tree_cpu(api.pid), tree_cpu(postgres_pid()), tree_cpu(upstream.pid))
                    gateway_calls += n + warmup
                    per_call = [1000 * (b - a) for a, b in zip(cpu0, cpu1, strict=True)]
                    rows.append(
                        Row(
                            mode,
                            c,
                            w,
                            direct,
                            gateway,
                            api_cpu_ms=per_call[0] / (n + warmup),
                            db_cpu_ms=per_call[1] / (n + warmup),
                            upstream_cpu_ms=per_call[2] / (2 * (n + warmup)),
                        )
                    )
                    d, g = pcts(direct.latencies), pcts(gateway.latencies)
                    print(
                        f"  {mode:6} c={c:<3} direct p50 {d[0]:.2f} ms, gateway p50 {g[0]:.2f} ms, "
                        f"{direct.rps():.0f} vs {gateway.rps():.0f} req/s ({time.perf_counter() - t0:.1f}s)"
                    )
            stop_process(api)
            api = None

        recorded = usage_count(project, expected=gateway_calls)
        print()
        print(f"usage records for the bench project: {recorded} (gateway calls, warm-up included: {gateway_calls})")
        print_tables(rows)
        verdict(rows)
        project.delete()
        if recorded != gateway_calls:
            print("FAILED: not every gateway call was metered exactly once", file=sys.stderr)
            return 1
        return 0
    finally:
        if api is not None:
            stop_process(api)
        stop_process(upstream)
        stop_embedded()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failure as exc:
        sys.exit(f"FAILED: {exc}")
