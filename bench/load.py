"""Load test of ``adcraft serve``: latency per route, throughput, errors and the server's peak memory.

    python bench/load.py [--duration 60] [--clients 50] [--seed 41] [--products 20]
                         [--workdir /tmp/adcraft-bench/load] [--out out/bench/load.json] [--mode routes|serving]

It simulates a small market, runs ``optimize`` on it with a small configuration, starts ``adcraft serve``
on a free loopback port in a subprocess (a real uvicorn server with a token) and runs two phases of
``--clients`` concurrent clients (httpx, asyncio) for ``--duration`` seconds each:

- ``score``: ``POST /v1/score`` on combinations drawn from the run's proposals and the market's logged
  creatives, every one scored once before the clock starts (cached features; goal p99 < 50 ms);
- ``mixed``: 70 % score, 15 % ``/v1/propose`` (k in 1..3) and 15 % ``GET /v1/creatives/{id}.png``.

When ``wrk`` (Debian package ``wrk``, a C load generator) is on PATH, a third phase ``score-wrk`` runs the
score workload from ``--clients`` wrk connections instead: the Python client above costs more CPU per request
than the server, so on a small machine it measures itself; wrk leaves the CPU to the server.

Reported per phase: requests, errors (status >= 400 or a failed connection), requests/s, p50/p99 latency
per route in ms as the clients saw it and as the server's access log measured it (time inside the app);
and the server's peak resident memory (``VmHWM`` of /proc/PID/status). After SIGTERM the server finishes
in-flight requests and exits with status -15 (uvicorn re-raises the signal once shut down). The client runs
on the same machine as the server, so on a small or shared machine both compete for the CPU.

``--mode serving`` measures serving with honest logs instead (``serving_main``): the first two proposals of
every product are approved, then ``--clients`` clients call ``POST /v1/serve`` on random products for
``--duration`` seconds and ``POST /v1/feedback`` on a share of the impressions (a simulated click: 8 % for
the current creative, 12 % for an approved one). The server is then sent SIGTERM with the last requests in
flight and started again on the same database, and the log is counted: impressions and clicks the clients
were answered 200 for (count in) against rows of the served log (count out, read from the database and,
through the restarted server, from ``/v1/serve``'s arm counts). Reported: requests, errors, latency per
route, the share of traffic the approved creatives got in the first and the last tenth of the phase, and
both counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from adcraft.pipeline.optimize import OptimizeConfig, optimize
from adcraft.simulator import SimulatorConfig, simulate_market

SMALL_OPTIMIZE = OptimizeConfig.smoke(top_k=3)


def make_run(workdir: Path, seed: int, products: int) -> tuple[Path, Path]:
    """A simulated market and a small optimize run on it (reused when already there)."""
    market_dir, run_dir = workdir / f"market-{seed}-{products}", workdir / f"run-{seed}-{products}"
    if not (run_dir / "creatives.parquet").is_file():
        config = SimulatorConfig(seed=seed, n_products=products, n_impressions=600 * products,
                                 creatives_per_product=3, canvas=(256, 256), photo_size=160)
        market_dir = simulate_market(config, market_dir).market_dir
        optimize(market_dir, run_dir, SMALL_OPTIMIZE)
    return run_dir, market_dir


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(run_dir: Path, market_dir: Path, workdir: Path, port: int, token: str, log,
                 database: str = "decisions.sqlite") -> subprocess.Popen:
    token_file = workdir / "token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    command = [sys.executable, "-m", "adcraft.cli", "serve", "--run", str(run_dir), "--market", str(market_dir),
               "--port", str(port), "--token-file", str(token_file),
               "--database-url", f"sqlite:///{workdir / database}"]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def wait_healthy(base: str, server: subprocess.Popen, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode} (see server.log)")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit("the server did not become healthy in time")


@dataclass
class Workload:
    combos: list[tuple[str, list[str]]]
    products: list[str]
    creative_ids: list[str]
    live_ids: list[str] = field(default_factory=list)


def workload(run_dir: Path, market_dir: Path) -> Workload:
    proposals = pd.read_parquet(run_dir / "creatives.parquet")
    logged = pd.read_parquet(market_dir / "creatives.parquet")
    combos = [(p, [str(e) for e in c]) for p, c in zip(proposals["product_id"], proposals["elements"])]
    combos += [(p, [str(e) for e in c]) for p, c in zip(logged["product_id"], logged["elements"])]
    ids = [Path(i).stem for i in proposals["image"]] + logged["creative_id"].tolist()
    return Workload(combos, sorted(set(proposals["product_id"])), ids)


async def one_request(client: httpx.AsyncClient, rng: random.Random, work: Workload, mixed: bool
                      ) -> tuple[str, int, float]:
    draw = rng.random() if mixed else 0.0
    route = "score" if draw < 0.70 else "propose" if draw < 0.85 else "creatives"
    started = time.perf_counter()
    try:
        if route == "score":
            product, elements = rng.choice(work.combos)
            response = await client.post("/v1/score", json={"product_id": product, "elements": elements})
        elif route == "propose":
            response = await client.post("/v1/propose", json={"product_id": rng.choice(work.products),
                                                              "k": rng.randint(1, 3)})
            if response.status_code == 200:
                work.live_ids.extend(c["id"] for c in response.json()["creatives"])
                del work.live_ids[:-200]
        else:
            pool = work.creative_ids + work.live_ids
            response = await client.get(f"/v1/creatives/{rng.choice(pool)}.png")
        status = response.status_code
    except httpx.HTTPError:
        status = 0
    return route, status, 1000 * (time.perf_counter() - started)


async def phase(base: str, token: str, work: Workload, clients: int, duration_s: float, seed: int, mixed: bool
                ) -> dict:
    records: list[tuple[str, int, float]] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, limits=limits,
                                 timeout=30) as client:
        deadline = time.perf_counter() + duration_s

        async def user(index: int) -> None:
            rng = random.Random(seed * 1000 + index)
            while time.perf_counter() < deadline:
                records.append(await one_request(client, rng, work, mixed))

        started = time.perf_counter()
        await asyncio.gather(*(user(i) for i in range(clients)))
        elapsed = time.perf_counter() - started
    return summarise(records, elapsed)


def percentiles(ms: np.ndarray) -> dict[str, float]:
    """p50 and p99 of latencies in ms, rounded to 0.01 ms."""
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def summarise(records: list[tuple[str, int, float]], elapsed: float) -> dict:
    out = {"requests": len(records), "seconds": round(elapsed, 2),
           "requests_per_s": round(len(records) / elapsed, 1),
           "errors": sum(1 for _, status, _ in records if status == 0 or status >= 400),
           "statuses": {}, "routes": {}}
    for _, status, _ in records:
        out["statuses"][str(status)] = out["statuses"].get(str(status), 0) + 1
    for route in sorted({r for r, _, _ in records}):
        ms = np.array([m for r, _, m in records if r == route])
        out["routes"][route] = {"requests": len(ms), **percentiles(ms), "max_ms": round(float(ms.max()), 2)}
    return out


def access_lines(log: Path) -> list[dict]:
    """The server's access-log records (one JSON object per request)."""
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def server_side(records: list[dict]) -> dict:
    """p50/p99 of the time each request spent inside the app (the access log's ms), per route."""
    out = {}
    for route in ("score", "propose", "creatives"):
        ms = np.array([r["ms"] for r in records if r["path"].startswith(f"/v1/{route}")])
        if len(ms):
            out[route] = percentiles(ms)
    return out


WRK_SCRIPT = """
bodies = {}
for line in io.lines(os.getenv("ADCRAFT_WRK_BODIES")) do bodies[#bodies + 1] = line end
counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("ADCRAFT_WRK_TOKEN")
request = function()
  counter = counter + 1
  return wrk.format(nil, "/v1/score", nil, bodies[(counter % #bodies) + 1])
end
done = function(summary, latency, requests)
  io.write(string.format("ADCRAFT %d %d %d %d %d %d %.1f %.1f %.1f\\n", summary.requests, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def wrk_phase(base: str, token: str, work: Workload, clients: int, duration_s: float, workdir: Path) -> dict | None:
    """The score workload driven by wrk (``clients`` connections, one thread); None when wrk is missing."""
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk not found (apt-get install wrk): the score-wrk phase is skipped", flush=True)
        return None
    bodies, script = workdir / "score-bodies.jsonl", workdir / "score.lua"
    bodies.write_text("".join(json.dumps({"product_id": p, "elements": e}) + "\n" for p, e in work.combos))
    script.write_text(WRK_SCRIPT)
    env = {**os.environ, "ADCRAFT_WRK_BODIES": str(bodies), "ADCRAFT_WRK_TOKEN": token}
    result = subprocess.run([wrk, "-t1", f"-c{clients}", f"-d{int(duration_s)}s", "-s", str(script), base],
                            capture_output=True, text=True, env=env, check=True)
    fields = next(line.split()[1:] for line in result.stdout.splitlines() if line.startswith("ADCRAFT "))
    requests, connect, read, write, status, timeout = (int(v) for v in fields[:6])
    p50, p99, worst = (float(v) for v in fields[6:])
    errors = connect + read + write + status + timeout
    return {"requests": requests, "seconds": duration_s, "requests_per_s": round(requests / duration_s, 1),
            "errors": errors, "statuses": {"non-2xx or failed": errors},
            "routes": {"score": {"requests": requests, "p50_ms": p50, "p99_ms": p99, "max_ms": worst}}}


def warm_scores(base: str, token: str, work: Workload) -> None:
    """Score every combination once, so that the score phase measures cached features."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        for product, elements in work.combos:
            response = client.post("/v1/score", json={"product_id": product, "elements": elements})
            response.raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per phase")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seed", type=int, default=41)
    parser.add_argument("--products", type=int, default=20)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/adcraft-bench/load"))
    parser.add_argument("--out", type=Path, default=None, help="default: out/bench/load.json, or "
                                                                  "out/bench/load_serving.json with --mode serving")
    parser.add_argument("--mode", choices=("routes", "serving"), default="routes",
                        help="routes: score, mixed (and wrk) phases; serving: /v1/serve + /v1/feedback and the "
                             "count of the log after SIGTERM and a restart")
    args = parser.parse_args()
    if args.out is None:
        args.out = Path("out/bench/load_serving.json" if args.mode == "serving" else "out/bench/load.json")
    if args.mode == "serving":
        serving_main(args)
        return
    print(f"seeds: market {args.seed}, clients {args.seed}*1000+i; {args.clients} clients, {args.duration:g} s "
          "per phase", flush=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    run_dir, market_dir = make_run(args.workdir, args.seed, args.products)
    token, port = secrets.token_urlsafe(24), free_port()
    base = f"http://127.0.0.1:{port}"
    with open(args.workdir / "server.log", "w") as log:
        server = start_server(run_dir, market_dir, args.workdir, port, token, log)
        report_run(args, run_dir, market_dir, server, base, token)


def report_run(args: argparse.Namespace, run_dir: Path, market_dir: Path, server: subprocess.Popen, base: str,
               token: str) -> None:
    try:
        wait_healthy(base, server)
        work = workload(run_dir, market_dir)
        warm_scores(base, token, work)
        results = {}
        for name, seed, mixed in (("score", args.seed, False), ("mixed", args.seed + 1, True)):
            start_line = len(access_lines(args.workdir / "server.log"))
            results[name] = asyncio.run(phase(base, token, work, args.clients, args.duration, seed, mixed))
            results[name]["server_side"] = server_side(access_lines(args.workdir / "server.log")[start_line:])
        start_line = len(access_lines(args.workdir / "server.log"))
        driven = wrk_phase(base, token, work, args.clients, args.duration, args.workdir)
        if driven is not None:
            driven["server_side"] = server_side(access_lines(args.workdir / "server.log")[start_line:])
            results["score-wrk"] = driven
        peak = peak_rss_mb(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            exit_status = server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            exit_status = server.wait()
    report = {
        "seed": args.seed, "clients": args.clients, "duration_s": args.duration, "products": args.products,
        "combinations": len(work.combos), "server_peak_rss_mb": round(peak, 1), "server_exit_status": exit_status,
        "cpu_count": os.cpu_count(), "python": platform.python_version(), "phases": results,
    }
    for name, result in results.items():
        print(f"{name}: {result['requests']} requests in {result['seconds']} s = {result['requests_per_s']}/s, "
              f"{result['errors']} errors {result['statuses']}")
        for route, figures in result["routes"].items():
            print(f"  {route:>9}: p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, max {figures['max_ms']} ms "
                  f"({figures['requests']} requests)")
        for route, figures in result["server_side"].items():
            print(f"  {route:>9}: inside the app p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms")
    print(f"server peak RSS {peak:.0f} MB; exit status after SIGTERM {exit_status}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


# ------------------------------------------------------------------------------------------ serving mode

CLICK_RATE = {"current": 0.08, "approved": 0.12}  # the simulated users' click probability per kind of creative


@dataclass
class ServingTally:
    """What the clients saw: answered impressions and clicks (count in), latencies, failures."""

    served: dict[str, str] = field(default_factory=dict)  # impression id -> source, answered 200
    clicked: set[str] = field(default_factory=set)  # impression ids whose feedback was answered 200
    records: list[tuple[str, int, float]] = field(default_factory=list)  # (route, status, ms) before SIGTERM
    sources: list[tuple[float, str]] = field(default_factory=list)  # (seconds since start, source) of each answer
    at_shutdown: list[tuple[str, int]] = field(default_factory=list)  # requests in flight at SIGTERM: (route, status)
    failures: dict[str, int] = field(default_factory=dict)  # before SIGTERM: "route: exception or status" -> count


def approve_proposals(base: str, token: str, per_product: int = 2) -> int:
    """Approve the first ``per_product`` proposals of every product through the API; returns how many."""
    approved = 0
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        products = client.get("/v1/review/products", params={"limit": 100}).raise_for_status().json()["products"]
        for product in products:
            for proposal in product["proposals"][:per_product]:
                client.post("/v1/decisions", json={"product_id": product["product_id"],
                                                   "creative_id": proposal["creative_id"], "decision": "approve"}
                            ).raise_for_status()
                approved += 1
    return approved


async def serving_phase(base: str, token: str, products: list[str], clients: int, duration_s: float, seed: int,
                        server: subprocess.Popen) -> tuple[ServingTally, float]:
    """``clients`` users serve and click for ``duration_s``; then SIGTERM reaches the server with their last
    requests in flight (each user finishes the one it has started and stops). Returns the tally and the
    phase's seconds up to SIGTERM."""
    tally = ServingTally()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    terminating = asyncio.Event()
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, limits=limits,
                                 timeout=60) as client:
        started = time.perf_counter()

        async def call(route: str, body: dict) -> httpx.Response | None:
            shutdown = terminating.is_set()
            begun = time.perf_counter()
            try:
                response = await client.post(f"/v1/{route}", json=body)
                status = response.status_code
                failure = None if status < 400 else f"status {status}"
            except httpx.HTTPError as error:  # what failed, so that an error can be told from the load
                response, status, failure = None, 0, f"{type(error).__name__}: {error}"[:200]
            if shutdown or terminating.is_set():
                tally.at_shutdown.append((route, status))
            else:
                tally.records.append((route, status, 1000 * (time.perf_counter() - begun)))
                if failure is not None:
                    key = f"{route}: {failure}"
                    tally.failures[key] = tally.failures.get(key, 0) + 1
            return response if status == 200 else None

        async def user(index: int) -> None:
            rng = random.Random(seed * 1000 + index)
            while not terminating.is_set():
                answer = await call("serve", {"product_id": rng.choice(products)})
                if answer is None:
                    continue
                body = answer.json()
                tally.served[body["impression_id"]] = body["source"]
                tally.sources.append((time.perf_counter() - started, body["source"]))
                if rng.random() < CLICK_RATE[body["source"]] and not terminating.is_set():
                    if await call("feedback", {"impression_id": body["impression_id"]}) is not None:
                        tally.clicked.add(body["impression_id"])

        users = [asyncio.create_task(user(i)) for i in range(clients)]
        await asyncio.sleep(duration_s)
        elapsed = time.perf_counter() - started
        terminating.set()
        server.send_signal(signal.SIGTERM)
        await asyncio.gather(*users)
    return tally, elapsed


def stop_server(server: subprocess.Popen) -> int:
    try:
        return server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        return server.wait()


def logged_counts(database: Path) -> tuple[int, int]:
    """(served impressions, clicked impressions) in the served log, read from the database file."""
    import sqlite3

    connection = sqlite3.connect(database)
    try:
        total, clicks = connection.execute("SELECT count(*), coalesce(sum(click), 0) FROM served_impressions"
                                           ).fetchone()
    finally:
        connection.close()
    return int(total), int(clicks)


def counts_through_api(base: str, token: str, products: list[str]) -> tuple[int, int]:
    """(impressions, clicks) the restarted server's policy counts over every product's arms (read from the
    ``arms`` of one ``/v1/serve`` per product, before that impression is added)."""
    impressions = clicks = 0
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        for product in products:
            arms = client.post("/v1/serve", json={"product_id": product}).raise_for_status().json()["arms"]
            impressions += sum(arm["impressions"] for arm in arms)
            clicks += sum(arm["clicks"] for arm in arms)
    return impressions, clicks


def approved_share(sources: list[tuple[float, str]], low: float, high: float) -> float:
    window = [source for at, source in sources if low <= at < high]
    return round(sum(source == "approved" for source in window) / max(1, len(window)), 3)


def serving_main(args: argparse.Namespace) -> None:
    """The serving mode (module docstring): one phase, SIGTERM, restart, and the count of the log."""
    print(f"seeds: market {args.seed}, clients {args.seed}*1000+i; {args.clients} clients, {args.duration:g} s "
          "of /v1/serve + /v1/feedback", flush=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    run_dir, market_dir = make_run(args.workdir, args.seed, args.products)
    database = args.workdir / "serving.sqlite"
    database.unlink(missing_ok=True)  # count from an empty log
    token, port = secrets.token_urlsafe(24), free_port()
    base = f"http://127.0.0.1:{port}"
    products = sorted(pd.read_parquet(run_dir / "products.parquet")["product_id"])
    with open(args.workdir / "server.log", "w") as log:
        server = start_server(run_dir, market_dir, args.workdir, port, token, log, database.name)
        try:
            wait_healthy(base, server)
            approved = approve_proposals(base, token)
            tally, elapsed = asyncio.run(serving_phase(base, token, products, args.clients, args.duration,
                                                       args.seed, server))
            peak = peak_rss_mb(server.pid)
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
            first_exit = stop_server(server)
        in_db = logged_counts(database)  # after SIGTERM, before the restart
        restarted = start_server(run_dir, market_dir, args.workdir, port, token, log, database.name)
        try:
            wait_healthy(base, restarted)
            through_api = counts_through_api(base, token, products)
        finally:
            restarted.send_signal(signal.SIGTERM)
            second_exit = stop_server(restarted)
    answered = (len(tally.served), len(tally.clicked))
    phase = summarise(tally.records, elapsed)
    tenth = elapsed / 10
    report = {
        "seed": args.seed, "clients": args.clients, "duration_s": args.duration, "products": args.products,
        "approved_creatives": approved, "phase": phase, "failures": tally.failures,
        "server_peak_rss_mb": round(peak, 1),
        "in_flight_at_sigterm": {"requests": len(tally.at_shutdown),
                                 "answered_200": sum(status == 200 for _, status in tally.at_shutdown),
                                 "failed": sum(status != 200 for _, status in tally.at_shutdown)},
        "count_in": {"impressions": answered[0], "clicks": answered[1]},
        "count_out_database": {"impressions": in_db[0], "clicks": in_db[1]},
        "count_out_restarted_server": {"impressions": through_api[0], "clicks": through_api[1]},
        "counts_equal": answered == in_db == through_api,
        "approved_share": {"first_tenth": approved_share(tally.sources, 0, tenth),
                           "last_tenth": approved_share(tally.sources, elapsed - tenth, elapsed + 1e9)},
        "server_exit_status": [first_exit, second_exit], "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    print(f"serving: {phase['requests']} requests in {phase['seconds']} s = {phase['requests_per_s']}/s, "
          f"{phase['errors']} errors {phase['statuses']}" + (f"; failures {tally.failures}" if tally.failures else ""))
    for route, figures in phase["routes"].items():
        print(f"  {route:>9}: p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, max {figures['max_ms']} ms "
              f"({figures['requests']} requests)")
    print(f"in flight at SIGTERM: {report['in_flight_at_sigterm']}")
    print(f"count in {report['count_in']}; count out: database {report['count_out_database']}, restarted server "
          f"{report['count_out_restarted_server']}; equal: {report['counts_equal']}")
    print(f"approved creatives' share of traffic: {report['approved_share']}; server peak RSS {peak:.0f} MB; "
          f"exit statuses {first_exit}, {second_exit}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
