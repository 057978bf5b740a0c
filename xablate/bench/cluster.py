"""Per-job overhead of the Ray launcher against Hydra's basic launcher: the same small debug sweep through each.

    xablate bench cluster                       # python run.py -m debug=default train.epochs=1
                                                #   train.save_model=false residual=true,false seed=0,1 (4 jobs)

Each launcher runs the sweep into a fresh SQLite store; the row is the wall time of the whole sweep command (its
start-up, Hydra, the launcher, every job, the parent run), per job, and its ratio to the basic launcher. The Ray
sweep goes to a local Ray cluster the benchmark starts beforehand (its start is a column of its own, not part of
the sweep's time) and kills afterwards: a head alone (one CPU: its jobs run one after another, as the basic
launcher's do) and a head with `--workers` worker nodes (one CPU each: that many more jobs at once).

Ray runs only inside a network namespace of the benchmark's own (`unshare -n`, loopback up): outside one it would
advertise the machine's own address. The whole measurement, the basic launcher's sweep included, runs in that
namespace (this module re-runs itself there); it needs root, `unshare` and `ip`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from xablate.bench.report import write_csv
from xablate.paths import project_root

STUDY = "bench_cluster"
DEFAULT_OVERRIDES = ["debug=default", "train.epochs=1", "train.save_model=false", "residual=true,false", "seed=0,1"]
COLUMNS = ["launcher", "nodes", "slots", "jobs", "seconds", "seconds_per_job", "ratio_vs_local", "train_seconds",
           "cluster_start_seconds", "exit_code"]
RAY_SETTINGS = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}


def missing_prerequisites() -> str:
    """Why this machine cannot run the benchmark ("" when it can)."""
    missing = [tool for tool in ("unshare", "ip") if shutil.which(tool) is None]
    if os.geteuid() != 0 or missing:
        return (f"xablate: bench cluster needs root, unshare and ip (a network namespace of its own for Ray); "
                f"{'not root' if os.geteuid() != 0 else 'root'}, missing: {', '.join(missing) or 'none'}")
    return ""


def environment() -> dict:
    """The sweeps' environment: no developer's MLflow settings, Ray without auth and usage stats."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "RAY_ADDRESS")}
    return {**env, **RAY_SETTINGS, "TF_CPP_MIN_LOG_LEVEL": env.get("TF_CPP_MIN_LOG_LEVEL", "2")}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---- inside the namespace ------------------------------------------------------------------------------------


def start_node(temp_dir: Path, *arguments: str) -> subprocess.Popen:
    """One Ray node with one CPU (`ray start --block`: it lives as long as its own process group)."""
    ray = str(Path(sys.executable).parent / "ray")
    return subprocess.Popen([ray, "start", "--block", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                             "--disable-usage-stats", f"--temp-dir={temp_dir}", *arguments], env=environment(),
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def alive_nodes(address: str) -> int:
    probe = subprocess.run([sys.executable, "-c", "import ray; ray.init(address=%r, logging_level='ERROR'); "
                            "print(sum(n['Alive'] for n in ray.nodes()))" % address],
                           env=environment(), capture_output=True, text=True, timeout=120)
    return int(probe.stdout.strip().splitlines()[-1]) if probe.returncode == 0 and probe.stdout.strip() else 0


def wait_for_nodes(address: str, count: int, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if alive_nodes(address) >= count:
            return
        time.sleep(1)
    raise RuntimeError(f"the Ray cluster at {address} did not reach {count} nodes in {timeout:.0f} s")


def kill_cluster(nodes: list[subprocess.Popen], marks: list[str]) -> None:
    """Every node's process group (SIGTERM, then SIGKILL), then any process left whose command line names this
    cluster (its GCS address or its temporary folder); never `ray stop`, which would end other clusters too."""
    import psutil

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for node in nodes:
            try:
                os.killpg(node.pid, sig)
            except ProcessLookupError:
                pass
        time.sleep(1 if sig == signal.SIGTERM else 0)
    for node in nodes:
        try:
            node.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
    for process in psutil.process_iter(["cmdline"]):
        line = " ".join(process.info["cmdline"] or [])
        if any(mark in line for mark in marks):
            try:
                process.kill()
            except psutil.Error:
                pass


def sweep(folder: Path, label: str, overrides: list[str], launcher: list[str]) -> dict:
    """`python run.py -m` of `overrides` through `launcher` into a fresh store in folder/label, timed."""
    from mlflow import MlflowClient

    where = folder / label
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    uri = f"sqlite:///{where / 'mlflow.db'}"
    command = [sys.executable, str(project_root() / "run.py"), "-m", *launcher, *overrides, f"study={STUDY}",
               f"tracking.uri={uri}"]
    with (where / "sweep.log").open("w") as log:
        start = time.perf_counter()
        done = subprocess.run(command, cwd=where, env=environment(), stdout=log, stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - start
    jobs = []
    if (where / "mlflow.db").exists():
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name(STUDY)
        if experiment is not None:
            jobs = [r for r in client.search_runs([experiment.experiment_id], max_results=10_000)
                    if r.data.tags.get("xablate.role") != "sweep" and r.info.status == "FINISHED"]
    return {"jobs": len(jobs), "seconds": round(seconds, 2), "exit_code": done.returncode,
            "train_seconds": round(sum(r.data.metrics.get("train_seconds", 0.0) for r in jobs), 2),
            "log_tail": (where / "sweep.log").read_text()[-3000:] if done.returncode else ""}


def on_ray(folder: Path, label: str, workers: int, overrides: list[str]) -> dict:
    """A Ray head (and `workers` worker nodes) started here, the sweep through it, the cluster killed."""
    temp_dir = Path(tempfile.mkdtemp(prefix="xbr", dir="/tmp"))  # short: Ray's socket paths stay under 108 chars
    address = f"127.0.0.1:{free_port()}"
    start = time.perf_counter()
    nodes = [start_node(temp_dir, "--head", f"--port={address.split(':')[1]}", "--include-dashboard=false")]
    try:
        wait_for_nodes(address, 1)
        nodes += [start_node(temp_dir, f"--address={address}") for _ in range(workers)]
        wait_for_nodes(address, 1 + workers)
        started = time.perf_counter() - start
        row = sweep(folder, label, overrides, ["hydra/launcher=ray_cluster",
                                               f"hydra.launcher.ray.init.address={address}"])
    finally:
        kill_cluster(nodes, [address, str(temp_dir)])
        shutil.rmtree(temp_dir, ignore_errors=True)
    return {"launcher": label, "nodes": 1 + workers, "slots": 1 + workers, **row,
            "cluster_start_seconds": round(started, 2)}


def inside(folder: Path, workers: list[int], overrides: list[str]) -> list[dict]:
    """The whole measurement, in this (fresh) network namespace: its loopback up, then each launcher in turn."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    rows = [{"launcher": "basic", "nodes": 1, "slots": 1, **sweep(folder, "basic", overrides, []),
             "cluster_start_seconds": ""}]
    print(f"[bench cluster] {line(rows[-1])}", file=sys.stderr, flush=True)
    for count in workers:
        rows.append(on_ray(folder, "ray_head" if count == 0 else f"ray_head+{count}_worker{'s' * (count > 1)}",
                           count, overrides))
        print(f"[bench cluster] {line(rows[-1])}", file=sys.stderr, flush=True)
    return rows


# ---- outside ---------------------------------------------------------------------------------------------------


def line(row: dict) -> str:
    per_job = row["seconds"] / row["jobs"] if row["jobs"] else float("nan")
    ratio = f", x{row['ratio_vs_local']:.2f} vs basic" if row.get("ratio_vs_local") not in (None, "") else ""
    started = (f" (cluster started in {row['cluster_start_seconds']} s, not counted)"
               if row["cluster_start_seconds"] != "" else "")
    return (f"{row['launcher']:22s} {row['nodes']} node(s), {row['slots']} slot(s): {row['jobs']} jobs in "
            f"{row['seconds']:.2f} s, {per_job:.2f} s/job{ratio}; exit {row['exit_code']}{started}")


def compared(rows: list[dict]) -> list[dict]:
    """Each row's seconds per job and its ratio to the basic launcher's (the first row)."""
    base = rows[0]
    out = []
    for row in rows:
        per_job = round(row["seconds"] / row["jobs"], 2) if row["jobs"] else ""
        ratio = round(row["seconds"] / base["seconds"], 3) if row["jobs"] and base["jobs"] else ""
        out.append({**row, "seconds_per_job": per_job, "ratio_vs_local": ratio})
    return out


def measure(folder: Path, workers: list[int], overrides: list[str]) -> list[dict]:
    """Runs `inside` in a new network namespace (`unshare -n`); its rows, compared."""
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "spec.json"
    spec.write_text(json.dumps({"workers": workers, "overrides": overrides}))
    done = subprocess.run(["unshare", "-n", sys.executable, "-m", "xablate.bench.cluster", str(folder)],
                          cwd=folder, env=environment())
    observed = folder / "observed.json"
    if done.returncode != 0 or not observed.exists():
        raise RuntimeError(f"the namespaced measurement exited with code {done.returncode}")
    return compared(json.loads(observed.read_text()))


def main(args) -> int:
    """`xablate bench cluster`: 2 without root/unshare/ip, 1 if a sweep failed or the launchers' job counts differ."""
    if why := missing_prerequisites():
        print(why, file=sys.stderr)
        return 2
    overrides = args.overrides or DEFAULT_OVERRIDES
    workers = [0] + ([args.workers] if args.workers else [])
    scratch = None if args.folder else tempfile.mkdtemp(prefix="xablate-bench-cluster-")
    try:
        rows = measure(Path(args.folder or scratch), workers, overrides)
    except RuntimeError as error:
        print(f"xablate: {error}", file=sys.stderr)
        return 1
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"sweep: python run.py -m {' '.join(overrides)} (each launcher into a fresh SQLite store)")
    for row in rows:
        print(line(row))
        if row["exit_code"]:
            print(row["log_tail"], file=sys.stderr)
    print(f"wrote {write_csv(rows, args.out, COLUMNS)}")
    return 0 if all(r["exit_code"] == 0 for r in rows) and len({r["jobs"] for r in rows}) == 1 else 1


if __name__ == "__main__":
    where = Path(sys.argv[1])
    settings = json.loads((where / "spec.json").read_text())
    result = inside(where, settings["workers"], settings["overrides"])
    (where / "observed.json").write_text(json.dumps(result, indent=2))
