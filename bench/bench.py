#!/usr/bin/env python3
"""bench/run's driver (Python 3 standard library only).

compare (default): our server against Prometheus Pushgateway, both driven by the same wrk
load generator on 127.0.0.1, and the targets of issue 5; then ingest on a 5-million-row
history with and without a retention pass pruning it, ingest with and without Prometheus
scraping /metrics every second, and what a scrape of 10,000 hosts costs; then ingest and
GET /status on PostgreSQL (a throwaway server from Debian's postgresql) with one replica and
with two on one database, and what the chain's tip lock cost; prints one table.
sweep: how GET /status and GET /history costs grow with the history (10k, 1M, 5M rows) and
the number of hosts (1k, 10k).
sizing: bytes per report as the server writes them, the volume a fleet needs under the
default retention policy, and the file's size over repeated fill-and-prune cycles.

Every process it starts is stopped by PID at the end. Databases generated with
`gitops-status bench-fill` are kept under target/bench/ and reused while the schema and the
generator are unchanged.
"""

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "target" / "release" / "gitops-status"
WRK_DIR = ROOT / "bench" / "wrk"
WORK = ROOT / "target" / "bench"

STARTED = []  # every process we started, stopped at exit


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv, log_path, env=None):
    out = open(log_path, "wb")
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    STARTED.append(proc)
    return proc


def stop(proc, timeout=20):
    """SIGTERM, then SIGKILL after `timeout` seconds; by PID, only processes we started."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc in STARTED:
        STARTED.remove(proc)


def stop_all():
    for proc in list(STARTED):
        stop(proc, timeout=5)


def http_status(port, path, timeout=0.5):
    """One GET over a raw socket: the status code, or None when nothing answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            head = s.recv(64)
        return int(head.split()[1])
    except (OSError, IndexError, ValueError):
        return None


def wait_ready(proc, port, path, limit=60.0):
    """Polls `path` every millisecond until it answers 200; returns the seconds it took."""
    began = time.monotonic()
    while time.monotonic() - began < limit:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args[0]} exited with {proc.returncode}")
        if http_status(port, path) == 200:
            return time.monotonic() - began
        time.sleep(0.001)
    raise RuntimeError(f"{path} on port {port} not ready after {limit} s")


def rss_kib(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def wrk(port, script, duration, connections, threads=2, **env):
    """Runs wrk with one of bench/wrk's scripts; returns its JSON summary plus req_s."""
    environment = dict(os.environ, BENCH_WRK_DIR=str(WRK_DIR))
    environment.update({k: str(v) for k, v in env.items()})
    # A request slower than wrk's default 2 s timeout would be dropped from the latencies.
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
            "--timeout", "30s",
            "-s", str(WRK_DIR / script), f"http://127.0.0.1:{port}"]
    done = subprocess.run(argv, env=environment, capture_output=True, text=True, check=True)
    lines = [l for l in done.stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")
    result = json.loads(lines[-1])
    result["req_s"] = result["requests"] / (result["duration_us"] / 1e6)
    result["errors"] = sum(result[k] for k in
                           ("connect_errors", "read_errors", "write_errors", "status_errors",
                            "timeouts"))
    return result


class Server:
    """Our release binary on a free loopback port. Retention is off unless asked for: the
    generated databases are reused between runs and must keep their history."""

    def __init__(self, db, name, extra=(), retention=False):
        self.port = free_port()
        self.db = db
        self.log = WORK / "logs" / f"{name}.log"
        policy = [] if retention else ["--retain-reports", "off"]
        self.proc = start([str(BINARY), "serve", "--listen", f"127.0.0.1:{self.port}",
                           "--db", str(db), *policy, *extra], self.log)
        self.startup = wait_ready(self.proc, self.port, "/ready")

    def post(self, path, timeout=3600):
        """POST without a body; the JSON answer."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n"
                      "Connection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n")[0]:
            raise RuntimeError(f"POST {path}: {head[:200]!r} {body[:200]!r}")
        return json.loads(body)

    def rss(self):
        return rss_kib(self.proc.pid)

    def stop(self):
        stop(self.proc)


class Scraper:
    """Prometheus's part: GET /metrics every second in a thread, as a 1 s scrape interval
    would; records each scrape's seconds and bytes."""

    def __init__(self, port, interval=1.0):
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.interval = interval
        self.scrapes = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done.is_set():
            began = time.monotonic()
            with urllib.request.urlopen(self.url, timeout=30) as answer:
                size = len(answer.read())
            took = time.monotonic() - began
            self.scrapes.append({"seconds": took, "bytes": size})
            self.done.wait(max(0.0, self.interval - took))

    def stop(self):
        self.done.set()
        self.thread.join()
        return self.scrapes


def gzip_size(port, path):
    """The size of one answer sent gzip-compressed (as Prometheus asks for it)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                     headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return len(answer.read())


class Pushgateway:
    def __init__(self, name):
        self.port = free_port()
        self.log = WORK / "logs" / f"{name}.log"
        # In memory only (upstream's default; Debian's build persists to /var/lib), so every
        # run starts empty and leaves nothing behind.
        self.proc = start(["prometheus-pushgateway", "--persistence.file=",
                           f"--web.listen-address=127.0.0.1:{self.port}"], self.log)
        wait_ready(self.proc, self.port, "/-/ready")

    def rss(self):
        return rss_kib(self.proc.pid)

    def stop(self):
        stop(self.proc)


def fixture_key():
    """Generated databases are reused while the migrations and the generator's version
    (GENERATOR_VERSION in src/bench.rs) are unchanged."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "migrations").glob("*.sql")):
        digest.update(path.read_bytes())
    version = re.search(r"GENERATOR_VERSION: u32 = (\d+);", (ROOT / "src" / "bench.rs").read_text())
    digest.update(version.group(1).encode() if version else b"?")
    return digest.hexdigest()[:12]


def fixture(hosts, rows):
    """A database holding `rows` generated reports over `hosts` hosts (built or extended from
    the largest smaller one with the same hosts)."""
    key = fixture_key()
    directory = WORK / "fixtures"
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.iterdir():
        if not stale.name.startswith(key):
            stale.unlink()
    path = directory / f"{key}-h{hosts}-r{rows}.db"
    if path.exists():
        return path
    smaller = sorted((p for p in directory.glob(f"{key}-h{hosts}-r*.db")
                      if int(p.stem.rsplit("-r", 1)[1]) < rows),
                     key=lambda p: int(p.stem.rsplit("-r", 1)[1]))
    partial = path.with_suffix(".partial")
    if smaller:
        log(f"extending {smaller[-1].name} to {rows} rows")
        subprocess.run(["cp", "--sparse=always", str(smaller[-1]), str(partial)], check=True)
    else:
        log(f"generating {rows} rows over {hosts} hosts")
        partial.unlink(missing_ok=True)
    began = time.monotonic()
    subprocess.run([str(BINARY), "bench-fill", "--db", str(partial), "--hosts", str(hosts),
                    "--rows", str(rows)], check=True, stdout=subprocess.DEVNULL)
    for suffix in ("-wal", "-shm", ".lock"):
        Path(str(partial) + suffix).unlink(missing_ok=True)
    partial.rename(path)
    log(f"{path.name}: {time.monotonic() - began:.0f} s")
    return path


def removed_so_far(db):
    """Rows the retention rows in the file say they removed (read while the server runs)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT coalesce(sum(json_extract(raw_body, '$.removed')), 0) "
                            "FROM reports WHERE kind = 'retention'").fetchone()[0]


def committed_rows(db):
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT count(*) FROM reports").fetchone()[0]


def median(values):
    return statistics.median(values) if values else float("nan")


def ms(us):
    return us / 1000.0


def machine():
    model = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, load generator on the same CPUs"


# ---------------------------------------------------------------------------------------------
# compare


class Postgres:
    """A throwaway PostgreSQL server (tests/postgres/server.sh, Debian's postgresql): fresh
    databases for the PostgreSQL mode, stopped by PID at the end."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="bench-pg-"))
        os.chmod(self.dir, 0o711)
        done = subprocess.run(["bash", str(ROOT / "tests/postgres/server.sh"), "start",
                               str(self.dir / "pg")], check=True, capture_output=True,
                              text=True)
        self.url = done.stdout.strip()

    def database(self, name):
        self.psql(self.url, f"CREATE DATABASE {name}")
        return self.url.rsplit("/", 1)[0] + "/" + name

    @staticmethod
    def psql(url, sql):
        done = subprocess.run(["psql", url, "-qAtc", sql], check=True, capture_output=True,
                              text=True)
        return done.stdout.strip()

    def stop(self):
        subprocess.run(["bash", str(ROOT / "tests/postgres/server.sh"), "stop",
                        str(self.dir / "pg")], check=False, capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def wrk_together(ports, script, duration, connections, **env):
    """wrk against several servers at once (connections split between them): the summed
    req/s, the worst p50 and p99, and each run."""
    results = [None] * len(ports)

    def one(i, port):
        results[i] = wrk(port, script, duration, connections // len(ports), threads=1, **env)

    threads = [threading.Thread(target=one, args=(i, p)) for i, p in enumerate(ports)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "req_s": sum(r["req_s"] for r in results),
        "requests": sum(r["requests"] for r in results),
        "status_errors": sum(r["status_errors"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "p50_us": max(r["p50_us"] for r in results),
        "p99_us": max(r["p99_us"] for r in results),
        "each": results,
    }


def metric_sum(port, name):
    """The value of one unlabelled series of /metrics (0 when absent)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def postgres_mode(args, results):
    """Ingest and GET /status on PostgreSQL with one replica and with two, each on a fresh
    database, and what the chain's tip lock cost (its wait as a share of commit time)."""
    d = args.duration
    pg = Postgres()
    try:
        for run in range(args.repeats):
            for replicas in (1, 2):
                log(f"PostgreSQL run {run + 1}/{args.repeats}: {replicas} replica(s)")
                url = pg.database(f"bench_{run}_{replicas}")
                servers = [Server(url, f"pg{replicas}-{run}-{i}") for i in range(replicas)]
                ports = [s.port for s in servers]
                try:
                    ingest = wrk_together(ports, "ingest.lua", d, 64, BENCH_HOSTS=1000)
                    read = wrk_together(ports, "get.lua", d, 64, BENCH_PATH="/status")
                    waited = sum(metric_sum(p, "gitops_status_chain_lock_wait_seconds_sum")
                                 for p in ports)
                    commits = sum(metric_sum(p, "gitops_status_commit_duration_seconds_sum")
                                  for p in ports)
                    groups = sum(metric_sum(p, "gitops_status_commit_duration_seconds_count")
                                 for p in ports)
                finally:
                    for s in servers:
                        s.stop()
                committed = int(Postgres.psql(url, "SELECT count(*) FROM reports"))
                acknowledged = ingest["requests"] - ingest["status_errors"]
                results.setdefault(f"postgres_{replicas}", []).append({
                    "ingest": ingest, "read": read, "lock_wait_s": waited,
                    "commit_s": commits, "groups": groups, "committed": committed,
                    "acknowledged": acknowledged,
                    "every_2xx_committed":
                        acknowledged <= committed <= acknowledged + 64,
                })
    finally:
        pg.stop()


def compare(args):
    results = {"machine": machine(), "repeats": args.repeats, "runs": []}
    big = fixture(10_000, args.rows)
    small = fixture(10_000, 10_000)
    d = args.duration

    for run in range(args.repeats):
        log(f"run {run + 1}/{args.repeats}: ingest and reads, ours and Pushgateway")
        r = {}
        db = WORK / "runs" / f"ingest-{run}.db"
        for p in WORK.glob(f"runs/ingest-{run}.db*"):
            p.unlink()
        ours = Server(db, f"ours-{run}")
        pg = Pushgateway(f"pushgateway-{run}")
        try:
            r["ours_ingest"] = wrk(ours.port, "ingest.lua", d, 64, BENCH_HOSTS=1000)
            r["pg_ingest"] = wrk(pg.port, "push.lua", d, 64, BENCH_HOSTS=1000)
            r["pg_rss_kib"] = pg.rss()[0]
            r["ours_read"] = wrk(ours.port, "get.lua", d, 64, BENCH_PATH="/status")
            r["pg_read"] = wrk(pg.port, "get.lua", d, 64, BENCH_PATH="/metrics")
            if run == 0:
                r["ours_read_gzip"] = wrk(ours.port, "get.lua", d, 64, BENCH_PATH="/status",
                                          BENCH_ACCEPT_ENCODING="gzip")
        finally:
            ours.stop()
            pg.stop()
        acknowledged = r["ours_ingest"]["requests"] - r["ours_ingest"]["status_errors"]
        r["committed"] = committed_rows(db)
        r["acknowledged"] = acknowledged
        # wrk stops with up to 64 requests in flight: committed, never counted as answered.
        r["every_2xx_committed"] = acknowledged <= r["committed"] <= acknowledged + 64
        results["runs"].append(r)

    log("memory: 10,000 hosts of ingest")
    db = WORK / "runs" / "rss.db"
    for p in WORK.glob("runs/rss.db*"):
        p.unlink()
    ours = Server(db, "ours-rss")
    try:
        results["rss_ingest"] = wrk(ours.port, "ingest.lua", d, 64, BENCH_HOSTS=10_000)
        results["rss_kib"], results["hwm_kib"] = ours.rss()
    finally:
        ours.stop()

    log("ingest over 10,000 hosts with and without a 1 s /metrics scrape, in turn")
    for run in range(args.repeats):
        for scraped in (False, True):
            db = WORK / "runs" / f"scrape-{run}-{int(scraped)}.db"
            for p in WORK.glob(f"runs/scrape-{run}-{int(scraped)}.db*"):
                p.unlink()
            server = Server(db, f"ours-scrape-{run}-{int(scraped)}")
            scraper = Scraper(server.port) if scraped else None
            try:
                results.setdefault("ingest_scraped" if scraped else "ingest_unscraped",
                                   []).append(wrk(server.port, "ingest.lua", d, 64,
                                                  BENCH_HOSTS=10_000))
            finally:
                if scraper:
                    results.setdefault("scrapes_under_load", []).extend(scraper.stop())
                server.stop()

    log("reads at 10,000 hosts: 10k and 5M rows of history")
    # Latency targets are measured with one connection: the time a request takes, not the
    # time it queues behind others. Both servers run side by side and are measured in turn,
    # so drift in the machine's speed falls on both alike.
    servers = {name: Server(db, f"ours-{name}") for name, db in (("small", small), ("big", big))}
    try:
        for _ in range(args.repeats):
            for name, server in servers.items():
                results.setdefault(f"status_{name}", []).append(
                    wrk(server.port, "get.lua", 5, 1, threads=1, BENCH_PATH="/status"))
                results.setdefault(f"history_{name}", []).append(
                    wrk(server.port, "get.lua", 5, 1, threads=1, BENCH_HOSTS=10_000,
                        BENCH_PATH="/status/{group}/{host}/history?limit=100"))
                results.setdefault(f"metrics_{name}", []).append(
                    wrk(server.port, "get.lua", 5, 1, threads=1, BENCH_PATH="/metrics"))
                results.setdefault(f"badge_host_{name}", []).append(
                    wrk(server.port, "get.lua", 5, 1, threads=1, BENCH_HOSTS=10_000,
                        BENCH_PATH="/badge/{group}/{host}.svg"))
                results.setdefault(f"ui_{name}", []).append(
                    wrk(server.port, "get.lua", 5, 1, threads=1, BENCH_PATH="/ui/"))
                results.setdefault(f"ui_sorted_{name}", []).append(
                    wrk(server.port, "get.lua", 5, 1, threads=1,
                        BENCH_PATH="/ui/?q=group-0&sort=status&order=desc&page=3"))
                results.setdefault(f"ui_host_{name}", []).append(
                    wrk(server.port, "get.lua", 5, 1, threads=1, BENCH_HOSTS=10_000,
                        BENCH_PATH="/ui/hosts/{group}/{host}"))
                results.setdefault(f"badge_group_{name}", []).append(
                    wrk(server.port, "get.lua", 5, 1, threads=1, BENCH_HOSTS=10_000,
                        BENCH_PATH="/badge/{group}.svg"))
        results["metrics_gzip_bytes"] = gzip_size(servers["big"].port, "/metrics")
    finally:
        for server in servers.values():
            server.stop()
    server = Server(big, "ours-metrics-totals", extra=["--metrics-per-host=false"])
    try:
        results["metrics_totals"] = [wrk(server.port, "get.lua", 5, 1, threads=1,
                                         BENCH_PATH="/metrics") for _ in range(args.repeats)]
    finally:
        server.stop()

    log("ingest on a 5M-row history, without and with a retention pass pruning it")
    for run in range(args.repeats):
        db = WORK / "runs" / "prune.db"
        for p in WORK.glob("runs/prune.db*"):
            p.unlink()
        subprocess.run(["cp", "--reflink=auto", "--sparse=always", str(big), str(db)], check=True)
        server = Server(db, f"ours-no-prune-{run}")
        try:
            # The copy's pages are not in the page cache yet: warm them up first.
            wrk(server.port, "ingest.lua", 5, 64, BENCH_HOSTS=1000)
            results.setdefault("ingest_history", []).append(
                wrk(server.port, "ingest.lua", d, 64, BENCH_HOSTS=1000))
        finally:
            server.stop()
        # The generated history is from 2025: past every default limit but the newest 100
        # reports of each host, so the pass has millions of rows to remove.
        server = Server(db, f"ours-prune-{run}", retention=True)
        outcome = {}
        pruner = threading.Thread(target=lambda: outcome.update(server.post("/admin/prune")))
        try:
            pruner.start()
            time.sleep(1)
            before = removed_so_far(db)
            results.setdefault("ingest_pruning", []).append(
                wrk(server.port, "ingest.lua", d, 64, BENCH_HOSTS=1000))
            removed = removed_so_far(db) - before
            results.setdefault("pruned_during_ingest", []).append(removed)
            if not pruner.is_alive():
                raise RuntimeError(f"the pass ended before the ingest phase did: {outcome}")
        finally:
            server.stop()
            pruner.join()

    log("start-up to ready with 5M rows")
    startups = []
    for n in range(5):
        server = Server(big, f"ours-startup-{n}")
        startups.append(server.startup)
        server.stop()
    results["startup_s"] = startups

    if not args.no_postgres:
        postgres_mode(args, results)

    out = WORK / f"compare-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=1))
    log(f"raw results: {out}")
    report_compare(results, args)


def report_compare(res, args):
    runs = res["runs"]
    ingest = [r["ours_ingest"]["req_s"] for r in runs]
    pg_ingest = [r["pg_ingest"]["req_s"] for r in runs]
    ingest_ratio = [r["ours_ingest"]["req_s"] / r["pg_ingest"]["req_s"] for r in runs]
    read = [r["ours_read"]["req_s"] for r in runs]
    pg_read = [r["pg_read"]["req_s"] for r in runs]
    read_ratio = [r["ours_read"]["req_s"] / r["pg_read"]["req_s"] for r in runs]
    p50 = [ms(r["ours_ingest"]["p50_us"]) for r in runs]
    p99 = [ms(r["ours_ingest"]["p99_us"]) for r in runs]
    pg_p99 = [ms(r["pg_ingest"]["p99_us"]) for r in runs]
    gzip = runs[0]["ours_read_gzip"]
    plain_bytes = runs[0]["ours_read"]["bytes"] / runs[0]["ours_read"]["requests"]
    gzip_bytes = gzip["bytes"] / gzip["requests"]
    status_small = median([ms(r["p50_us"]) for r in res["status_small"]])
    status_big = median([ms(r["p50_us"]) for r in res["status_big"]])
    size_small = res["status_small"][0]["bytes"] / res["status_small"][0]["requests"]
    size_big = res["status_big"][0]["bytes"] / res["status_big"][0]["requests"]
    history = median([ms(r["p50_us"]) for r in res["history_big"]])
    history_small = median([ms(r["p50_us"]) for r in res["history_small"]])
    startup = median(res["startup_s"]) * 1000
    rss = res["rss_kib"] / 1024
    pg_rss = median([r["pg_rss_kib"] for r in runs]) / 1024
    committed = all(r["every_2xx_committed"] for r in runs)
    plain_ingest = median([r["req_s"] for r in res["ingest_history"]])
    plain_p50 = median([ms(r["p50_us"]) for r in res["ingest_history"]])
    plain_p99 = median([ms(r["p99_us"]) for r in res["ingest_history"]])
    pruning_ingest = median([r["req_s"] for r in res["ingest_pruning"]])
    pruning_p50 = median([ms(r["p50_us"]) for r in res["ingest_pruning"]])
    pruning_p99 = median([ms(r["p99_us"]) for r in res["ingest_pruning"]])
    pruned = median(res["pruned_during_ingest"])
    errors = sum(r["ours_ingest"]["errors"] + r["ours_read"]["errors"] for r in runs)
    unscraped = median([r["req_s"] for r in res["ingest_unscraped"]])
    scraped = median([r["req_s"] for r in res["ingest_scraped"]])
    scraped_p99 = median([ms(r["p99_us"]) for r in res["ingest_scraped"]])
    unscraped_p99 = median([ms(r["p99_us"]) for r in res["ingest_unscraped"]])
    load_scrapes = res["scrapes_under_load"]
    load_scrape_ms = median([s["seconds"] * 1000 for s in load_scrapes])
    metrics_small = median([ms(r["p50_us"]) for r in res["metrics_small"]])
    metrics_big = median([ms(r["p50_us"]) for r in res["metrics_big"]])
    metrics_bytes = res["metrics_big"][0]["bytes"] / res["metrics_big"][0]["requests"]
    totals = median([ms(r["p50_us"]) for r in res["metrics_totals"]])
    badge_host = median([ms(r["p50_us"]) for r in res["badge_host_big"]])
    badge_group = median([ms(r["p50_us"]) for r in res["badge_group_big"]])
    ui_small = median([ms(r["p50_us"]) for r in res["ui_small"]])
    ui_big = median([ms(r["p50_us"]) for r in res["ui_big"]])
    ui_sorted = median([ms(r["p50_us"]) for r in res["ui_sorted_big"]])
    ui_bytes = res["ui_big"][0]["bytes"] / res["ui_big"][0]["requests"]
    ui_host_small = median([ms(r["p50_us"]) for r in res["ui_host_small"]])
    ui_host_big = median([ms(r["p50_us"]) for r in res["ui_host_big"]])
    ui_host_bytes = res["ui_host_big"][0]["bytes"] / res["ui_host_big"][0]["requests"]
    totals_bytes = res["metrics_totals"][0]["bytes"] / res["metrics_totals"][0]["requests"]

    def yes(ok):
        return "met" if ok else "NOT met"

    rows = [
        ("POST /status/pipeline, 1000 hosts, c64: req/s", f"{median(ingest):,.0f}",
         f"{median(pg_ingest):,.0f}", f"{median(ingest_ratio):.0f}x", ">= 200x",
         yes(median(ingest_ratio) >= 200)),
        ("  p50 / p99 latency", f"{median(p50):.1f} / {median(p99):.1f} ms",
         f"p99 {median(pg_p99):.0f} ms", "", "p99 < 10 ms", yes(median(p99) < 10)),
        ("  every 2xx committed (rows vs 2xx answers)",
         f"{runs[-1]['committed']:,} / {runs[-1]['acknowledged']:,}", "", "", "all",
         yes(committed)),
        ("GET /status vs /metrics, 1000 hosts, c64: req/s", f"{median(read):,.0f}",
         f"{median(pg_read):,.0f}", f"{median(read_ratio):.0f}x", ">= 10x",
         yes(median(read_ratio) >= 10)),
        ("  with Accept-Encoding: gzip: req/s, bytes",
         f"{gzip['req_s']:,.0f}, {gzip_bytes / 1024:,.0f} KiB",
         f"plain {plain_bytes / 1024:,.0f} KiB", f"{plain_bytes / gzip_bytes:.0f}x smaller",
         "", ""),
        ("GET /status p50, 10k hosts, 10k rows (c1)", f"{status_small:.2f} ms",
         f"{size_small / 2**20:.1f} MiB body", "", "", ""),
        ("GET /status p50, 10k hosts, 5M rows (c1)", f"{status_big:.2f} ms",
         f"{size_big / 2**20:.1f} MiB body",
         f"{status_big / status_small:.2f}x of 10k rows", "<= 1.2x",
         yes(status_big <= 1.2 * status_small)),
        ("GET host history limit=100 p50, 10k rows (c1)", f"{history_small:.2f} ms", "", "",
         "", ""),
        ("GET host history limit=100 p50, 5M rows (c1)", f"{history:.2f} ms", "",
         f"{history / history_small:.1f}x of 10k rows", "< 5 ms", yes(history < 5)),
        ("RSS after ingest over 10k hosts", f"{rss:.1f} MiB",
         f"{pg_rss:.1f} MiB (1000 groups)", "", "<= 32 MiB", yes(rss <= 32)),
        ("start-up to ready, 5M rows", f"{startup:.0f} ms", "", "", "<= 200 ms",
         yes(startup <= 200)),
        ("POST /status/pipeline on a 5M-row history, c64: req/s", f"{plain_ingest:,.0f}",
         "", "", "", ""),
        ("  p50 / p99 latency", f"{plain_p50:.1f} / {plain_p99:.1f} ms", "", "", "", ""),
        ("  the same while retention prunes it: req/s", f"{pruning_ingest:,.0f}", "",
         f"{pruning_ingest / plain_ingest:.2f}x", "", ""),
        ("  p50 / p99 latency", f"{pruning_p50:.1f} / {pruning_p99:.1f} ms", "", "", "", ""),
        ("  rows pruned meanwhile", f"{pruned / args.duration:,.0f} rows/s", "", "", "", ""),
        ("POST /status/pipeline, 10k hosts, c64: req/s", f"{unscraped:,.0f}", "", "", "", ""),
        ("  the same with /metrics scraped every second", f"{scraped:,.0f}", "",
         f"{scraped / unscraped:.2f}x", ">= 0.9x", yes(scraped >= 0.9 * unscraped)),
        ("  p99 without / with scraping", f"{unscraped_p99:.1f} / {scraped_p99:.1f} ms", "",
         "", "", ""),
        ("  scrapes meanwhile: count, p50", f"{len(load_scrapes)}, {load_scrape_ms:.1f} ms",
         "", "", "", ""),
        ("GET /metrics p50, 10k hosts, 10k rows (c1)", f"{metrics_small:.2f} ms", "", "", "",
         ""),
        ("GET /metrics p50, 10k hosts, 5M rows (c1)", f"{metrics_big:.2f} ms",
         f"{metrics_bytes / 2**20:.1f} MiB, gzip {res['metrics_gzip_bytes'] / 2**10:,.0f} KiB",
         "", "", ""),
        ("  with --metrics-per-host=false", f"{totals:.2f} ms",
         f"{totals_bytes / 2**10:.0f} KiB", "", "", ""),
        ("GET /badge/{group}/{host}.svg p50, 10k hosts, 5M rows (c1)", f"{badge_host:.2f} ms",
         "", "", "< 1 ms", yes(badge_host < 1)),
        ("GET /badge/{group}.svg p50, 10k hosts, 5M rows (c1)", f"{badge_group:.2f} ms", "", "",
         "< 1 ms", yes(badge_group < 1)),
        ("GET /ui/ p50, 10k hosts, 10k / 5M rows (c1)", f"{ui_small:.2f} / {ui_big:.2f} ms",
         f"{ui_bytes / 2**10:.0f} KiB page", "", "< 50 ms", yes(ui_big < 50)),
        ("  filtered by text, sorted by status, page 3", f"{ui_sorted:.2f} ms", "", "",
         "< 50 ms", yes(ui_sorted < 50)),
        ("GET /ui/hosts/{group}/{host} p50, 10k / 5M rows (c1)",
         f"{ui_host_small:.2f} / {ui_host_big:.2f} ms",
         f"{ui_host_bytes / 2**10:.0f} KiB page", "", "", ""),
    ]
    for replicas in (1, 2):
        runs_pg = res.get(f"postgres_{replicas}")
        if not runs_pg:
            continue
        name = "one replica" if replicas == 1 else "two replicas on one database"
        ingest_pg = median([r["ingest"]["req_s"] for r in runs_pg])
        p50_pg = median([ms(r["ingest"]["p50_us"]) for r in runs_pg])
        p99_pg = median([ms(r["ingest"]["p99_us"]) for r in runs_pg])
        read_pg = median([r["read"]["req_s"] for r in runs_pg])
        wait_share = median([r["lock_wait_s"] / r["commit_s"] if r["commit_s"] else 0
                             for r in runs_pg])
        wait_ms = median([1000 * r["lock_wait_s"] / r["groups"] if r["groups"] else 0
                          for r in runs_pg])
        size = median([r["acknowledged"] / r["groups"] if r["groups"] else 0 for r in runs_pg])
        rows += [
            (f"PostgreSQL, {name}: POST /status/pipeline, 1000 hosts, c64: req/s",
             f"{ingest_pg:,.0f}", "", f"{ingest_pg / median(ingest):.2f}x of SQLite", "", ""),
            ("  p50 / p99 latency", f"{p50_pg:.1f} / {p99_pg:.1f} ms", "", "", "", ""),
            ("  every 2xx committed (rows vs 2xx answers)",
             f"{runs_pg[-1]['committed']:,} / {runs_pg[-1]['acknowledged']:,}", "", "", "all",
             yes(all(r["every_2xx_committed"] for r in runs_pg))),
            ("  chain's tip lock: wait per group, share of commit time, reports per group",
             f"{wait_ms:.2f} ms, {100 * wait_share:.0f}%, {size:.0f}", "", "", "", ""),
            (f"PostgreSQL, {name}: GET /status, 1000 hosts, c64: req/s", f"{read_pg:,.0f}", "",
             f"{read_pg / median(read):.2f}x of SQLite", "", ""),
        ]
    print()
    print(f"gitops-status bench, {time.strftime('%Y-%m-%d %H:%M')}; {res['machine']}")
    print(f"medians of {args.repeats} runs; ratios are ours / Pushgateway 1.5 in the same run; "
          f"wrk -t2, {args.duration} s per load phase; {errors} wrk errors or non-2xx on ours")
    print()
    widths = [max(len(str(r[i])) for r in rows + [HEADER]) for i in range(len(HEADER))]
    for row in [HEADER, tuple("-" * w for w in widths)] + rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")
    print()
    print("per run, ours / Pushgateway req/s: ingest "
          + ", ".join(f"{r['ours_ingest']['req_s']:,.0f}/{r['pg_ingest']['req_s']:,.0f}" for r in runs)
          + "; reads "
          + ", ".join(f"{r['ours_read']['req_s']:,.0f}/{r['pg_read']['req_s']:,.0f}" for r in runs))


HEADER = ("measure", "gitops-status", "Pushgateway", "ratio", "target", "")


# ---------------------------------------------------------------------------------------------
# sweep


# The new read resources of the watch issue, as dashboards call them.
FLEET_READS = [
    ("summary", "/summary"),
    ("groups", "/groups"),
    ("filtered", "/status?status=out_of_sync,failed"),
    ("transitions", "/transitions?envelope=true&limit=100"),
    ("host_transitions", "/transitions?host={host}"),
    ("commits", "/commits"),
]


def sweep(args):
    rows_list = [10_000, 1_000_000, 5_000_000]
    table = []
    for hosts in (1_000, 10_000):
        for rows in rows_list:
            db = fixture(hosts, rows)
            log(f"sweep: {hosts} hosts, {rows} rows")
            server = Server(db, f"sweep-h{hosts}-r{rows}")
            try:
                point = {
                    "hosts": hosts, "rows": rows, "startup_ms": server.startup * 1000,
                    "db_mib": db.stat().st_size / 2**20,
                    "status": wrk(server.port, "get.lua", args.duration, 1, threads=1,
                                  BENCH_PATH="/status"),
                    "group": wrk(server.port, "get.lua", args.duration, 1, threads=1,
                                 BENCH_PATH="/status/group-00"),
                    "history": wrk(server.port, "get.lua", args.duration, 1, threads=1,
                                   BENCH_HOSTS=hosts,
                                   BENCH_PATH="/status/{group}/{host}/history?limit=100"),
                    "recent": wrk(server.port, "get.lua", args.duration, 1, threads=1,
                                  BENCH_PATH="/history?limit=100"),
                }
                # The watch resources: counts, changes, rollouts (the newest commit of the
                # generated history is on every host of every group).
                newest = json.loads(urllib.request.urlopen(
                    f"http://127.0.0.1:{server.port}/commits?limit=1", timeout=10).read())
                sha = newest[0]["commit_sha"] if newest else "none"
                for name, path in FLEET_READS + [("commit_hosts", f"/commits/{sha}")]:
                    point[name] = wrk(server.port, "get.lua", args.duration, 1, threads=1,
                                      BENCH_HOSTS=hosts, BENCH_PATH=path)
            finally:
                server.stop()
            table.append(point)
    # Each point against the same host count's smallest history.
    bases = {p["hosts"]: p for p in reversed(table)}
    print()
    print(f"gitops-status cost curve, {time.strftime('%Y-%m-%d %H:%M')}; {machine()}")
    print(f"p50 latency, one connection (wrk -t1 -c1), {args.duration} s each; "
          "x: relative to 10k rows, same hosts")
    print()
    header = ("hosts", "rows", "db", "start-up", "GET /status", "GET /status/group-00",
              "host history (limit 100)", "GET /history (limit 100)")
    lines = []
    for p in table:
        def cell(name):
            v, b = p[name]["p50_us"], bases[p["hosts"]][name]["p50_us"]
            return f"{ms(v):.2f} ms ({v / b:.2f}x)"
        lines.append((f"{p['hosts']:,}", f"{p['rows']:,}", f"{p['db_mib']:,.0f} MiB",
                      f"{p['startup_ms']:.0f} ms", cell("status"), cell("group"),
                      cell("history"), cell("recent")))
    widths = [max(len(str(r[i])) for r in lines + [header]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths)] + lines:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")
    print()
    print("the watch resources, p50 latency, one connection; commits/{sha}: a commit every "
          "host of every group runs")
    print()
    header = ("hosts", "rows") + tuple(path for _, path in FLEET_READS) + ("/commits/{sha}",)
    lines = []
    for p in table:
        lines.append((f"{p['hosts']:,}", f"{p['rows']:,}")
                     + tuple(f"{ms(p[name]['p50_us']):.2f} ms" for name, _ in FLEET_READS)
                     + (f"{ms(p['commit_hosts']['p50_us']):.2f} ms",))
    widths = [max(len(str(r[i])) for r in lines + [header]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths)] + lines:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")
    out = WORK / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(table, indent=1))
    log(f"raw results: {out}")


# ---------------------------------------------------------------------------------------------
# sizing


def file_bytes(db):
    """The database file once its WAL is written back (the server is stopped)."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages, size, free = (conn.execute(f"PRAGMA {p}").fetchone()[0]
                             for p in ("page_count", "page_size", "freelist_count"))
    return pages * size, free * size


def sizing(args):
    d = args.duration
    db = WORK / "runs" / "sizing.db"
    for p in WORK.glob("runs/sizing.db*"):
        p.unlink()
    log("bytes per report: deployments, then the seeds' drift checks, as the server writes them")
    server = Server(db, "sizing-pipeline", retention=True)
    try:
        wrk(server.port, "ingest.lua", d, 64, BENCH_HOSTS=1000)
    finally:
        server.stop()
    pipeline_rows = committed_rows(db)
    pipeline_bytes, _ = file_bytes(db)
    server = Server(db, "sizing-cron", retention=True)
    try:
        wrk(server.port, "cron.lua", d, 64, BENCH_HOSTS=1000)
    finally:
        server.stop()
    cron_rows = committed_rows(db) - pipeline_rows
    total_bytes, _ = file_bytes(db)
    per_pipeline = pipeline_bytes / pipeline_rows
    per_cron = (total_bytes - pipeline_bytes) / cron_rows

    log(f"fill-and-prune: {args.cycles} cycles of {args.cycle_rows:,} generated reports "
        "over 10,000 hosts")
    cycles = []
    cycle_db = WORK / "runs" / "cycles.db"
    for p in WORK.glob("runs/cycles.db*"):
        p.unlink()
    subprocess.run(["cp", str(fixture(10_000, 10_000)), str(cycle_db)], check=True)
    rows = 10_000
    for cycle in range(args.cycles):
        rows += args.cycle_rows
        subprocess.run([str(BINARY), "bench-fill", "--db", str(cycle_db), "--hosts", "10000",
                        "--rows", str(rows)], check=True, stdout=subprocess.DEVNULL)
        filled, _ = file_bytes(cycle_db)
        server = Server(cycle_db, f"cycle-{cycle}", retention=True)
        try:
            began = time.monotonic()
            pass_ = server.post("/admin/prune")
            seconds = time.monotonic() - began
        finally:
            server.stop()
        pruned, free = file_bytes(cycle_db)
        cycles.append({"cycle": cycle + 1, "filled_bytes": filled, "pruned_bytes": pruned,
                       "free_bytes": free, "removed": pass_["removed"], "seconds": seconds,
                       "kept": committed_rows(cycle_db)})

    # The default policy at the seeds' 2-minute cron: 30 days of drift checks, and for 400
    # days the changes (assumed: a deployment and two status flips a day per host).
    fleet = []
    for hosts in (100, 1_000, 10_000):
        routine = hosts * 720 * 30
        changes = hosts * 3 * 400
        need = routine * per_cron + changes * per_pipeline
        # Headroom: the WAL, pages freed by a pass before the next reuses them, index slack.
        volume = need * 1.25
        fleet.append({"hosts": hosts, "rows": routine + changes, "bytes": need,
                      "volume_gib": max(1, -(-volume // 2**30))})

    print()
    print(f"gitops-status sizing, {time.strftime('%Y-%m-%d %H:%M')}; {machine()}")
    print(f"bytes per report, indexes included: deployment (444-byte body) {per_pipeline:.0f} "
          f"({pipeline_rows:,} rows); drift check (seed cron body) {per_cron:.0f} "
          f"({cron_rows:,} rows)")
    print()
    print("| hosts | rows kept (30 d of 2-min checks + 400 d of changes) | data | volume |")
    print("|---|---|---|---|")
    for f in fleet:
        print(f"| {f['hosts']:,} | {f['rows']:,} | {f['bytes'] / 2**30:.1f} GiB "
              f"| {f['volume_gib']:.0f} Gi |")
    print()
    print("| cycle | file after filling | after pruning | free pages in it | rows kept | "
          "removed | pass |")
    print("|---|---|---|---|---|---|---|")
    for c in cycles:
        print(f"| {c['cycle']} | {c['filled_bytes'] / 2**20:,.0f} MiB "
              f"| {c['pruned_bytes'] / 2**20:,.0f} MiB | {c['free_bytes'] / 2**20:,.0f} MiB "
              f"| {c['kept']:,} | {c['removed']:,} | {c['seconds']:.0f} s |")
    out = WORK / f"sizing-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"per_pipeline": per_pipeline, "per_cron": per_cron,
                               "fleet": fleet, "cycles": cycles}, indent=1))
    log(f"raw results: {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="compare",
                        choices=("compare", "sweep", "sizing"))
    parser.add_argument("--cycles", type=int, default=5,
                        help="sizing: fill-and-prune cycles (5)")
    parser.add_argument("--cycle-rows", type=int, default=500_000,
                        help="sizing: reports generated per cycle (500000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each comparison (3)")
    parser.add_argument("--no-postgres", action="store_true",
                        help="skip the PostgreSQL mode (1 and 2 replicas) of compare")
    parser.add_argument("--duration", type=int,
                        help="seconds per load phase (compare: 10, sweep: 5; at most 15)")
    parser.add_argument("--rows", type=int, default=5_000_000,
                        help="history rows of the large database (5000000)")
    args = parser.parse_args()
    if args.duration is None:
        args.duration = 5 if args.mode == "sweep" else 10
    if not 1 <= args.duration <= 15:
        parser.error("--duration must be 1..15 seconds")
    for path in ("logs", "runs"):
        (WORK / path).mkdir(parents=True, exist_ok=True)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(130))
    try:
        if args.mode == "compare":
            compare(args)
        elif args.mode == "sizing":
            sizing(args)
        else:
            sweep(args)
    finally:
        stop_all()


if __name__ == "__main__":
    main()
