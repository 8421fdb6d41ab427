"""Load benchmark (issue 32, item 5): K visitors spend at once through gradio_client against two app instances that
share one database, local requests on one Ray Serve deployment of a tiny model and remote ones at a slow fake
provider; one replica is killed part-way. It prints requests served, failed and refunded, p50/p95 latency per kind,
and audits the database: every visitor's balance equals its ledger sum and its grant less what it was charged, every
request's ledger rows net to its charge (refunds in full), and no reservation is left open.

    python bench/load.py --database-url postgresql+psycopg://USER:PW@127.0.0.1/DB   # 32 visitors x 2 requests, Ray
    python bench/load.py --visitors 4 --requests 1 --backend local --max-seconds 55   # smoke run, no Ray (tests)

Loopback only: the instances (`python app.py`, offline preview forced), the fake provider, Ray (a local cluster of 2
CPUs, no dashboard, in a temporary RAY_TMPDIR) and PostgreSQL (or a shared SQLite file without --database-url) are
on 127.0.0.1. Bounded: at most visitors x requests generation requests; none starts, and none is waited for, past
--max-seconds (default 300) less a reserve (a quarter, at most 30 s) for the audit and teardown; each instance ends a
request at 40 % of --max-seconds (its deadline, refunded); the whole run, start-up to teardown, stays within
--max-seconds or the last line says it did not and the exit status is 1. Measured on 2 cores: README, Deployment.

The last line: "served N · failed N · refunded N · balances exact", or what is not exact (exit status 1).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from pipelines.registry import load_registry  # noqa: E402
from services.accounts.tables import accounts, generations, ledger  # noqa: E402
from tests.fake_provider import FakeProvider  # noqa: E402

LOCAL, REMOTE = "sdxl-base", "flux.2-pro"  # a tiny-preview local model; an API model (fal) at the fake provider
NAMESPACE = "playground-load"
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


@dataclass
class Outcome:
    visitor: int
    kind: str
    ok: bool
    seconds: float
    error: str = ""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--visitors", type=int, default=32)
    parser.add_argument("--requests", type=int, default=2, help="sequential requests per visitor (default 2)")
    parser.add_argument("--remote-share", type=float, default=0.5, help="share of requests sent to the fake provider")
    parser.add_argument("--provider-hold-s", type=float, default=2.0, help="how long the fake provider holds each job")
    parser.add_argument("--steps", type=int, default=8, help="denoising steps of a local request")
    parser.add_argument("--backend", choices=("ray", "local"), default="ray",
                        help="ray: local models on one Serve deployment, one replica killed part-way; local: in the instances")
    parser.add_argument("--no-ray", dest="backend", action="store_const", const="local", help="the same as --backend local")
    parser.add_argument("--kill-at", type=float, default=0.25, help="kill the replica once this share of requests has ended")
    parser.add_argument("--database-url", default=os.environ.get("PLAYGROUND_LOAD_DATABASE_URL"),
                        help="a database both instances share (default: a SQLite file in a temporary folder)")
    parser.add_argument("--safety", default="none", help="the instances' output check (PLAYGROUND_SAFETY; default none)")
    parser.add_argument("--tiny-dir", default=os.environ.get("PLAYGROUND_TINY_DIR"),
                        help="tiny models (default: PLAYGROUND_TINY_DIR, else playground-tiny-models in the temp folder)")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="the whole run's bound (default 300)")
    args = parser.parse_args(argv)
    if args.visitors < 1 or args.requests < 1 or not 0 <= args.remote_share <= 1:
        parser.error("--visitors and --requests must be at least 1, --remote-share within [0, 1]")
    if args.backend == "ray" and importlib.util.find_spec("ray") is None:
        parser.error("ray is not installed: pip install -r requirements-ray.txt, or run with --backend local")
    return args


def kind_of(visitor: int, request: int, visitors: int, share: float) -> str:
    """A request's kind: `share` of them remote, spread evenly over each wave (every visitor's j-th request) and, with
    the default half, alternating in each visitor's own requests."""
    n = request * (visitors + 1 - visitors % 2) + visitor  # an odd stride: a visitor's next request flips parity
    return "remote" if int((n + 1) * share) > int(n * share) else "local"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Ray:
    """A local Ray (2 CPUs, no dashboard) with LOCAL's Serve application, deployed by the documented command."""

    def __init__(self, temp: Path, tiny: Path, wait_s: float):
        os.environ.update(RAY_ENV, RAY_TMPDIR=str(temp))  # before ray is imported: it reads some of these once
        import logging

        import ray

        self.ray = ray
        ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", namespace=NAMESPACE,
                 logging_level=logging.WARNING, log_to_driver=False)
        self.app = f"{NAMESPACE}.{load_registry().get(LOCAL).serve_group}"
        deploy = [sys.executable, "-m", "pipelines.serve", "--address", "auto", "--namespace", NAMESPACE, "--models", LOCAL,
                  "--preview", "force", "--tiny-dir", str(tiny), "--device", "cpu", "--num-gpus", "0", "--num-cpus", "0.5",
                  "--max-models-per-replica", "1", "--wait-s", str(int(wait_s))]
        done = subprocess.run(deploy, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
                              timeout=wait_s + 30)
        if done.returncode != 0 or f"{self.app}: RUNNING" not in done.stdout:
            raise RuntimeError(f"deploying {self.app} failed:\n{done.stdout}{done.stderr[-3000:]}")

    def replicas(self) -> list[str]:
        return sorted(a["name"] for a in self.ray.util.list_named_actors(all_namespaces=True)
                      if a["name"].startswith("SERVE_REPLICA::") and self.app in a["name"])

    def running(self) -> int:
        """Requests the replica is running now (its stats; 0 when it cannot say within 5 s)."""
        from ray import serve

        try:
            handle = serve.get_app_handle(self.app).options(method_name="stats")
            return int(handle.remote().result(timeout_s=5)["running"])
        except Exception:  # noqa: BLE001 - a replica starting or gone runs nothing we could kill mid-request
            return 0

    def kill_one(self) -> str:
        name = self.replicas()[0]
        self.ray.kill(self.ray.get_actor(name, namespace="serve"), no_restart=True)
        return name

    def close(self) -> None:
        from ray import serve

        try:
            serve.shutdown()
        finally:
            self.ray.shutdown()


def ensure_tiny(tiny: Path) -> None:
    """Build LOCAL's tiny model once here, so that two instances never build it into one folder at the same time."""
    entry = load_registry().get(LOCAL)
    if not (tiny / (entry.tiny or "") / "model_index.json").exists():
        from pipelines.runtime import PipelineRuntime, RuntimeSettings

        PipelineRuntime(load_registry(), RuntimeSettings(tiny_root=tiny, preview="force", device="cpu")).ensure_tiny(entry)


def start_instance(temp: Path, index: int, env: dict[str, str]) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    log = temp / f"instance-{index}.log"
    proc = subprocess.Popen([sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT,
                            env=dict(env, GRADIO_TEMP_DIR=str(temp / f"gradio-{index}")), stdout=log.open("w"),
                            stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}", log


def wait_ready(url: str, proc: subprocess.Popen, log: Path, until: float) -> None:
    while time.monotonic() < until:
        if proc.poll() is not None:
            raise RuntimeError(f"the instance at {url} exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/config", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the instance at {url} did not answer in time:\n{log.read_text()[-3000:]}")


def stop_instance(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # gradio closes, the instance marks itself stopped
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def instance_env(args, temp: Path, url: str, fake: FakeProvider, tiny: Path, request_deadline_s: float) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PLAYGROUND_DATA_DIR=str(temp / "shared"), PLAYGROUND_DATABASE_URL=url,
               PLAYGROUND_SECRET=secrets.token_hex(32), PLAYGROUND_PREVIEW="force", PLAYGROUND_DEVICE="cpu",
               PLAYGROUND_TINY_DIR=str(tiny), PLAYGROUND_ALLOW_DOWNLOADS="0", HF_HUB_OFFLINE="1",
               GRADIO_ANALYTICS_ENABLED="False", OMP_NUM_THREADS="1", PLAYGROUND_GRANTS_PER_IP="1000000",
               PLAYGROUND_SAFETY=args.safety, PLAYGROUND_TIMEOUT_S=str(request_deadline_s), PLAYGROUND_HEARTBEAT_S="2",
               PLAYGROUND_INSTANCE_STALE_S="20", FAL_KEY="load-bench-key", PLAYGROUND_PROVIDER_URL_FAL=f"{fake.url}/direct-fal",
               PLAYGROUND_REMOTE_ALLOW_HOSTS=fake.url.split("//")[1], PLAYGROUND_REMOTE_TIMEOUT_S=str(request_deadline_s),
               PLAYGROUND_BACKEND=args.backend)
    if args.backend == "ray":
        env.update(RAY_ENV, RAY_TMPDIR=os.environ["RAY_TMPDIR"], PLAYGROUND_RAY_ADDRESS="auto", PLAYGROUND_RAY_NAMESPACE=NAMESPACE)
    return env


class Load:
    """The visitors: each its own gradio_client on one instance (sticky), its requests one after another."""

    def __init__(self, args, urls: list[str], stop_at: float):
        self.args, self.urls, self.stop_at = args, urls, stop_at
        self.tls = ssl.create_default_context()  # built once: gradio_client would build one per HTTP call
        self.outcomes: list[Outcome] = []
        self.tokens: dict[int, str] = {}
        self.not_started = 0
        self.local_in_flight = 0
        self.lock = threading.Lock()
        self.total = args.visitors * args.requests

    def ended(self) -> int:
        with self.lock:
            return len(self.outcomes) + self.not_started

    def visitor(self, i: int) -> None:
        from gradio_client import Client

        client = Client(self.urls[i % len(self.urls)], verbose=False, ssl_verify=self.tls)
        try:
            token = client.predict(api_name="/session_start")["token"]
            with self.lock:
                self.tokens[i] = token
            for j in range(self.args.requests):
                kind = kind_of(i, j, self.args.visitors, self.args.remote_share)
                if time.monotonic() >= self.stop_at:
                    with self.lock:
                        self.not_started += 1
                    continue
                call = dict(prompt=f"visitor {i}, request {j}: a lighthouse at dusk", model=LOCAL if kind == "local" else REMOTE,
                            seed=1000 * i + j, token=token, api_name="/text_to_image")
                if kind == "local":
                    call["steps"] = self.args.steps
                self._one(client, i, kind, call)
        finally:
            client.close()

    def _one(self, client, i: int, kind: str, call: dict) -> None:
        with self.lock:
            self.local_in_flight += kind == "local"
        started = time.monotonic()
        job = client.submit(**call)
        try:
            job.result(timeout=max(0.1, self.stop_at - time.monotonic()))
            outcome = Outcome(i, kind, True, time.monotonic() - started)
        except Exception as exc:  # noqa: BLE001 - every failure is counted and named
            job.cancel()
            outcome = Outcome(i, kind, False, time.monotonic() - started, f"{type(exc).__name__}: {exc}"[:160])
        with self.lock:
            self.local_in_flight -= kind == "local"
            self.outcomes.append(outcome)


def killer(load: Load, ray_: Ray, killed: list[str], began: float) -> None:
    """Kill the replica once --kill-at of the requests have ended, while it runs a request if one comes within 15 s."""
    while load.ended() < load.args.kill_at * load.total and time.monotonic() < load.stop_at:
        time.sleep(0.05)
    waited, running = time.monotonic(), 0
    while load.ended() < load.total and time.monotonic() - waited < 15 and not (running := ray_.running()):
        time.sleep(0.02)
    if load.ended() < load.total:
        name = ray_.kill_one()
        killed.append(f"replica {name.split('::')[-1]} killed at {time.monotonic() - began:.1f} s while it ran "
                      f"{running} request(s)")


def audit(url: str, ids: list[str], settle_until: float) -> tuple[dict[str, int], list[str]]:
    """The database's view of the run's accounts: counts, and every way a balance is not exact."""
    engine = sa.create_engine(url)
    try:
        while True:
            with engine.connect() as conn:
                gens = conn.execute(sa.select(generations.c.id, generations.c.account_id, generations.c.status,
                                              generations.c.charged).where(generations.c.account_id.in_(ids))).all()
                if not any(g.status == "running" for g in gens) or time.monotonic() > settle_until:
                    break
            time.sleep(0.2)
        with engine.connect() as conn:
            balances = dict(conn.execute(sa.select(accounts.c.id, accounts.c.balance).where(accounts.c.id.in_(ids))).all())
            rows = conn.execute(sa.select(ledger.c.account_id, ledger.c.request_id, ledger.c.kind, ledger.c.amount)
                                .where(ledger.c.account_id.in_(ids))).all()
    finally:
        engine.dispose()
    sums, grants, nets, refunds = Counter(), Counter(), Counter(), set()
    for row in rows:
        sums[row.account_id] += row.amount
        grants[row.account_id] += row.amount if row.kind == "grant" else 0
        nets[row.request_id] += row.amount if row.kind in ("reserve", "capture", "refund") else 0
        if row.kind == "refund":
            refunds.add(row.request_id)
    charged = Counter()
    problems = [f"{len(ids) - len(balances)} visitor account(s) missing"] if len(balances) < len(ids) else []
    open_ = [g for g in gens if g.status == "running"]
    if open_:
        problems.append(f"{len(open_)} reservation(s) left open")
    for g in gens:
        charged[g.account_id] += g.charged if g.status == "done" else 0
        expected = -g.charged if g.status == "done" else (0 if g.status != "running" else nets[g.id])
        if nets[g.id] != expected:
            problems.append(f"request {g.id[:8]} ({g.status}) nets {nets[g.id]}, expected {expected}")
    for account_id, balance in balances.items():
        if balance != sums[account_id] or balance < 0 or balance != grants[account_id] - charged[account_id]:
            problems.append(f"account {account_id[:12]}: balance {balance}, ledger sum {sums[account_id]}, "
                            f"grant {grants[account_id]} less charged {charged[account_id]}")
    counts = {"records": len(gens), "done": sum(g.status == "done" for g in gens),
              "refunded": sum(g.status not in ("done", "running") and g.id in refunds for g in gens)}
    return counts, problems


def report(load: Load, counts: dict[str, int], problems: list[str], killed: list[str], timing: dict[str, float], bound: float) -> int:
    args = load.args
    outcomes = load.outcomes
    print(f"{'kind':<8} {'requests':>8} {'served':>7} {'failed':>7} {'p50 s':>7} {'p95 s':>7}")
    for kind in ("local", "remote"):
        mine = [o for o in outcomes if o.kind == kind]
        served = [o.seconds for o in mine if o.ok]
        print(f"{kind:<8} {len(mine):>8} {len(served):>7} {len(mine) - len(served):>7} "
              f"{percentile(served, 0.5):>7.2f} {percentile(served, 0.95):>7.2f}")
    for error, n in Counter(o.error for o in outcomes if not o.ok).most_common(4):
        print(f"failed {n} x {error}")
    print(f"start-up {timing['startup']:.1f} s, load {timing['load']:.1f} s, whole run {timing['total']:.1f} s "
          f"(bound {bound:g} s); {'; '.join(killed) or 'no replica killed'}")
    print(f"audit: {len(load.tokens)} visitor accounts, {counts['records']} generation records ({counts['done']} done)")
    served = sum(o.ok for o in outcomes)
    failed = len(outcomes) - served
    tail = [] if not load.not_started else [f"{load.not_started} request(s) not started within the bound"]
    if timing["total"] > bound:
        tail.append(f"over the bound ({timing['total']:.0f} s > {bound:g} s)")
    if args.backend == "ray" and not killed:
        tail.append("no replica was killed")
    line = f"served {served} · failed {failed} · refunded {counts['refunded']} · "
    line += "balances exact" if not problems else "NOT EXACT: " + "; ".join(problems[:5])
    print(" · ".join([line, *tail]))
    return 1 if problems or tail else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.monotonic()
    reserve = min(30.0, args.max_seconds / 4)
    stop_at = began + args.max_seconds - reserve
    with ExitStack() as stack:
        temp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="playground-load-")))
        tiny = Path(args.tiny_dir or Path(tempfile.gettempdir()) / "playground-tiny-models")  # kept between runs
        ensure_tiny(tiny)
        url = args.database_url or f"sqlite:///{temp / 'shared.db'}"
        fake = FakeProvider()
        stack.callback(fake.close)
        fake.hold_s = args.provider_hold_s
        ray_ = None
        if args.backend == "ray":
            ray_ = Ray(temp / "ray", tiny, wait_s=max(30.0, args.max_seconds / 3))
            stack.callback(ray_.close)
        env = instance_env(args, temp, url, fake, tiny, request_deadline_s=round(args.max_seconds * 0.4, 1))
        instances = [start_instance(temp, i, env) for i in range(2)]
        for proc, _, _ in instances:
            stack.callback(stop_instance, proc)
        for proc, base, log in instances:
            wait_ready(base, proc, log, until=began + args.max_seconds * 0.6)
        loaded = time.monotonic()
        load = Load(args, [base for _, base, _ in instances], stop_at)
        killed: list[str] = []
        watcher = threading.Thread(target=killer, args=(load, ray_, killed, loaded), daemon=True) if ray_ else None
        if watcher:
            watcher.start()
        with ThreadPoolExecutor(args.visitors, thread_name_prefix="visitor") as pool:
            for future in [pool.submit(load.visitor, i) for i in range(args.visitors)]:
                future.result()
        if watcher:
            watcher.join(15)
        finished = time.monotonic()
        ids = [token.rpartition(".")[0] for token in load.tokens.values()]  # a token is "<account id>.<signature>"
        counts, problems = audit(url, ids, settle_until=time.monotonic() + min(15.0, reserve / 2))
        if len(ids) < args.visitors:
            problems.insert(0, f"only {len(ids)} of {args.visitors} visitors started a session")
        print(f"load: {args.visitors} visitors x {args.requests} requests, two instances on "
              f"{url.split(':')[0].split('+')[0]}, {args.backend} backend ({LOCAL} tiny preview, {args.steps} steps), "
              f"{REMOTE} at a fake provider holding each job {args.provider_hold_s:g} s")
    timing = {"startup": loaded - began, "load": finished - loaded, "total": time.monotonic() - began}
    return report(load, counts, problems, killed, timing, args.max_seconds)


if __name__ == "__main__":
    raise SystemExit(main())
