"""A study across machines, played on this one inside a network namespace of its own (tests/test_cluster.py runs
it as `unshare -n python tests/cluster_scenario.py <mode> <folder>`): nothing it starts can reach, or be reached
from, any address but this namespace's loopback.

mode `cluster`: Debian's PostgreSQL (as its non-root user), `xablate server`'s MLflow server on it, and a Ray
cluster of a head and two worker nodes (real raylets in processes of their own). A tuned debug study (an Optuna
search with pruning, then the finals) runs across the nodes; one worker node is killed mid-run and the tracking
server restarted mid-run; the same command then finishes the study. Then status, figures, plan and ui against the
server. Writes what it saw to <folder>/observed.json for the test to assert.

mode `launcher`: a Ray head alone and a two-job sweep through hydra/launcher=ray_cluster (the launcher test).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xablate.tracking.server import LocalPostgres, free_port, start_server, stop_server  # noqa: E402

RAY = str(Path(sys.executable).parent / "ray")
RAY_ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
STUDY = "cluster_debug"
EXPERIMENT = f"""\
# @package _global_
defaults:
  - override /hydra/sweeper: staged
study: {STUDY}
hydra:
  sweeper:
    params:
      optim.optimizer: adam,sgd
      seed: 0,1
    tune:
      space:
        optim.learning_rate: {{log_uniform: [1.0e-3, 0.3]}}
      sampler: random
      trials: 2
      startup: 1
      pruner: median
"""


def loopback_up() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def start_node(*arguments: str) -> subprocess.Popen:
    """One Ray node (`ray start --block`: it lives as long as this process group)."""
    return subprocess.Popen([RAY, "start", "--block", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                             "--disable-usage-stats", *arguments], env=RAY_ENV, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def alive_nodes(address: str) -> int:
    probe = subprocess.run([sys.executable, "-c", "import ray; ray.init(address=%r, logging_level='ERROR'); "
                            "print(sum(n['Alive'] for n in ray.nodes()))" % address],
                           env=RAY_ENV, capture_output=True, text=True, timeout=120)
    return int(probe.stdout.strip().splitlines()[-1]) if probe.returncode == 0 and probe.stdout.strip() else 0


def wait_for_nodes(address: str, n: int, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if alive_nodes(address) >= n:
            return
        time.sleep(1)
    raise RuntimeError(f"the Ray cluster at {address} did not reach {n} nodes")


def join(nodes: list[subprocess.Popen], address: str, *arguments: str, tries: int = 3) -> None:
    """Starts one more node and waits until the cluster counts it; a node whose raylet gave up (under load Ray's
    raylet aborts when its agent is slow to write its port file) is killed and started again."""
    for attempt in range(tries):
        node = start_node(*arguments)
        try:
            wait_for_nodes(address, len(nodes) + 1, timeout=90)
        except RuntimeError:
            kill_group(node)
            if attempt == tries - 1:
                raise
            continue
        nodes.append(node)
        return


def kill_group(process: subprocess.Popen, sig=signal.SIGKILL) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pass


def kill_cluster(nodes: list[subprocess.Popen], address: str) -> None:
    """Every node's process group, then any process of this cluster left (its GCS address in its command line)."""
    for node in nodes:
        kill_group(node, signal.SIGTERM)
    time.sleep(1)
    for node in nodes:
        kill_group(node)
    for process in psutil.process_iter(["cmdline"]):
        if address in " ".join(process.info["cmdline"] or []):
            try:
                process.kill()
            except psutil.Error:
                pass


def loopback_only() -> list[str]:
    """Every TCP connection of this namespace whose ends are not 127.0.0.1 (none expected)."""
    import ipaddress

    def loopback(ip: str) -> bool:
        address = ipaddress.ip_address(ip.split("%")[0])
        mapped = getattr(address, "ipv4_mapped", None)
        return (mapped or address).is_loopback or (mapped or address).is_unspecified

    return [f"{c.laddr} -> {c.raddr}" for c in psutil.net_connections(kind="inet")
            if any(end and not loopback(end.ip) for end in (c.laddr, c.raddr))]


def job_runs(url: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(url)
    experiment = client.get_experiment_by_name(STUDY)
    if experiment is None:
        return []
    return [r for r in client.search_runs([experiment.experiment_id], max_results=5000)
            if r.data.tags.get("xablate.role") != "sweep"]


def training_run(url: str, nodes: list[subprocess.Popen] | None = None, epochs: int = 1) -> tuple[str, int] | None:
    """(run id, node index) of a RUNNING job run with at least `epochs` epochs logged (then it has a checkpoint)
    — on one of `nodes` when given: the run's process (tag xablate.pid) descends from that node's `ray start` — if
    any."""
    from mlflow import MlflowClient

    client = MlflowClient(url)
    groups = {node.pid: i for i, node in enumerate(nodes or [])}
    for run in job_runs(url):
        if run.info.status != "RUNNING" or len(client.get_metric_history(run.info.run_id, "loss")) < epochs:
            continue
        if nodes is None:
            return run.info.run_id, -1
        try:  # the run's process descends from its node's `ray start` (its raylet started the Ray worker)
            ancestors = [p.pid for p in psutil.Process(int(run.data.tags.get("xablate.pid", "0"))).parents()]
        except (psutil.Error, ValueError):
            continue
        node = next((groups[pid] for pid in ancestors if pid in groups), None)
        if node is not None:
            return run.info.run_id, node
    return None


def cluster(folder: Path) -> dict:
    observed: dict = {"events": []}
    loopback_up()
    (folder / "extra" / "experiment").mkdir(parents=True, exist_ok=True)
    (folder / "extra" / "experiment" / f"{STUDY}.yaml").write_text(EXPERIMENT)
    pg = LocalPostgres(folder / "pg").start()
    server = None
    nodes: list[subprocess.Popen] = []
    address = f"127.0.0.1:{free_port()}"
    try:
        server_port = free_port()
        server, url = start_server(pg.uri, folder / "artifacts", port=server_port, log=folder / "server.log")
        join(nodes, address, "--head", f"--port={address.split(':')[1]}", "--include-dashboard=false")
        for _ in range(2):  # one at a time: two raylets starting together on one host race for their ports
            join(nodes, address, f"--address={address}")
        observed["nodes"] = alive_nodes(address)
        command = [sys.executable, str(ROOT / "run.py"), "-m", f"--config-dir={folder / 'extra'}",
                   f"experiment={STUDY}", "debug=default", "train.epochs=3", "train.save_model=false",
                   "hydra/launcher=ray_cluster", f"hydra.launcher.ray.init.address={address}",
                   f"tracking.uri={url}", f"tracking.database={pg.uri}", f"train.checkpoint_dir={folder / 'shared'}",
                   "tracking.heartbeat_seconds=1", "tracking.stale_after_seconds=10", "tracking.system_metrics=false"]
        observed["command"] = command
        with open(folder / "sweep1.log", "w") as log:
            sweep = subprocess.Popen(command, cwd=folder, env=RAY_ENV, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
            deadline, killed, restarted = time.time() + 240, None, None
            while sweep.poll() is None and time.time() < deadline:
                runs = job_runs(url)
                finished = sum(r.info.status == "FINISHED" for r in runs)
                if killed is None and finished >= 2:
                    found = training_run(url, nodes[1:])  # a run a worker node trains (not the head's)
                    if found:  # that node dies, with what it was training
                        killed = found[0]
                        kill_group(nodes[1 + found[1]])
                        observed["events"].append(["worker node killed", killed, time.time()])
                elif killed and restarted is None:
                    found = training_run(url)
                    restarted = found[0] if found and found[0] != killed else None
                    if restarted:  # the tracking server goes away for a few seconds and comes back
                        stop_server(server)
                        time.sleep(3)
                        server, _ = start_server(pg.uri, folder / "artifacts", port=server_port,
                                                 log=folder / "server.log")
                        observed["events"].append(["server restarted", restarted, time.time()])
                time.sleep(0.5)
            if sweep.poll() is None:
                kill_group(sweep)
            observed["first_exit"] = sweep.returncode
        with open(folder / "sweep2.log", "w") as log:  # the same command, typed again
            again = subprocess.run(command, cwd=folder, env=RAY_ENV, stdout=log, stderr=subprocess.STDOUT,
                                   timeout=300, start_new_session=True)
        observed["second_exit"] = again.returncode
        observed["runs"] = describe_runs(url)
        observed["optuna"] = optuna_trials(pg.uri)
        observed["optuna_files"] = [str(p) for p in folder.rglob("optuna.db")]
        observed["commands"] = analysis_commands(folder, url)
        observed["foreign_connections"] = loopback_only()
    finally:
        kill_cluster(nodes, address)
        if server is not None:
            stop_server(server)
        pg.stop()
    return observed


def describe_runs(url: str) -> list[dict]:
    from mlflow import MlflowClient

    client = MlflowClient(url)
    out = []
    for run in job_runs(url):
        out.append({"run_id": run.info.run_id, "status": run.info.status, "stage": run.data.tags.get("xablate.stage"),
                    "identity": run.data.tags.get("xablate.identity"), "outcome": run.data.tags.get("xablate.outcome"),
                    "resumes": int(run.data.tags.get("xablate.resumes", "0")),
                    "epochs": [m.step for m in client.get_metric_history(run.info.run_id, "loss")],
                    "epochs_completed": run.data.metrics.get("epochs_completed"),
                    "optimizer": run.data.params.get("optim.optimizer"), "seed": run.data.params.get("seed"),
                    "learning_rate": run.data.params.get("optim.learning_rate")})
    return out


def optuna_trials(database: str) -> dict:
    import optuna

    from xablate.tuning import rdb_storage

    storage = rdb_storage(database)
    return {s.study_name: [t.state.name for t in optuna.load_study(study_name=s.study_name, storage=storage).trials]
            for s in optuna.get_all_study_summaries(storage)}


def analysis_commands(folder: Path, url: str) -> dict:
    """`xablate status`, `figures`, `plan` and `ui` against the server (status composes a copy of conf/ holding
    the study's file: the project's own conf/ is not the test's to change)."""
    outputs = {}
    project = folder / "project"
    shutil.copytree(ROOT / "conf", project / "conf", symlinks=False)
    shutil.copy(folder / "extra" / "experiment" / f"{STUDY}.yaml", project / "conf" / "experiment")
    status = subprocess.run([sys.executable, "-c", (
        "import sys, xablate.analysis.status as s, xablate.paths as p; from pathlib import Path; "
        f"s.project_root = lambda: Path({str(project)!r}); from xablate.cli import main; sys.exit(main(sys.argv[1:]))"),
        "status", f"experiment={STUDY}", "debug=default", "train.epochs=3", "train.save_model=false",
        f"tracking.uri={url}"], capture_output=True, text=True, timeout=300, cwd=folder)
    outputs["status"] = [status.returncode, status.stdout + status.stderr]
    xablate = str(Path(sys.executable).parent / "xablate")
    for name, arguments in (("figures", ["figures", "--uri", url, "--study", STUDY, "--out", str(folder / "results")]),
                            ("plan", ["plan", "--uri", url, "--study", STUDY, "--mde", "0.05"]),
                            ("ui", ["ui", "--uri", url, "--study", STUDY, "--no-browser"])):
        done = subprocess.run([xablate, *arguments], capture_output=True, text=True, timeout=300, cwd=folder)
        outputs[name] = [done.returncode, done.stdout + done.stderr]
    outputs["figures_written"] = sorted(p.name for p in (folder / "results").rglob("*") if p.is_file())
    return outputs


def launcher(folder: Path) -> dict:
    loopback_up()
    address = f"127.0.0.1:{free_port()}"
    nodes: list[subprocess.Popen] = []
    try:
        join(nodes, address, "--head", f"--port={address.split(':')[1]}", "--include-dashboard=false")
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        done = subprocess.run([sys.executable, str(ROOT / "run.py"), "-m", "hydra/launcher=ray_cluster",
                               f"hydra.launcher.ray.init.address={address}", "residual=true,false", "debug=default",
                               "study=ray", f"tracking.uri={uri}"], cwd=folder, env=RAY_ENV, capture_output=True,
                              text=True, timeout=600)
        from mlflow import MlflowClient

        client = MlflowClient(uri)
        runs = client.search_runs([client.get_experiment_by_name("ray").experiment_id]) if done.returncode == 0 else []
        return {"address": address, "uri": uri, "exit": done.returncode, "output": done.stdout + done.stderr,
                "foreign_connections": loopback_only(),
                "runs": [{"role": r.data.tags.get("xablate.role", "job"), "status": r.info.status,
                          "residual": r.data.tags.get("xablate.residual"), "parent": r.data.tags.get("mlflow.parentRunId"),
                          "run_id": r.info.run_id, "epochs": r.data.metrics.get("epochs_completed")} for r in runs]}
    finally:
        kill_cluster(nodes, address)


if __name__ == "__main__":
    mode, where = sys.argv[1], Path(sys.argv[2])
    result = {"cluster": cluster, "launcher": launcher}[mode](where)
    (where / "observed.json").write_text(json.dumps(result, indent=2, default=str))
