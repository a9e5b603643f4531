"""The Ray executor on local clusters: the same numbers as the local executor, a killed worker, a killed
and restarted driver, a lost node. Ray's files stay in each test's temporary folder."""
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from helpers import results

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--dataset=imdb_sample", "--model=cnn", "--vocab_size=300", "--embedding_dim=8", "--filters=4",
        "--levels=2", "--epochs=2", "--patience=1", "--branches=ticket,reinit", "--threads=1", "--progress=false"]


@pytest.fixture
def ray_env(tmp_path):
    short = tempfile.mkdtemp(prefix="r", dir="/tmp")  # Ray's socket paths must stay short
    env = dict(os.environ, RAY_TMPDIR=short, RAY_AUTH_MODE="disabled", HOME=str(tmp_path),
               RAY_USAGE_STATS_ENABLED="0")
    yield env
    subprocess.run(["pkill", "-9", "-f", short], check=False)
    subprocess.run(["rm", "-rf", short], check=False)


def cli(args, env, check=True, **kw):
    proc = subprocess.run([sys.executable, "-m", "lth_tf.main", *TINY, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900, **kw)
    if check:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("local")
    cli([f"--output_dir={root / 'out'}", f"--cache_dir={root / 'cache'}"], dict(os.environ))
    return root


def test_ray_gives_the_local_numbers_and_ray_files_stay_in_the_temporary_folder(local_reference, ray_env, tmp_path):
    proc = cli([f"--output_dir={tmp_path / 'out'}", f"--cache_dir={local_reference / 'cache'}", "--executor=ray"],
               ray_env)
    assert "ray: 1 node(s)" in proc.stdout
    assert results(tmp_path / "out") == results(local_reference / "out")
    assert os.listdir(ray_env["RAY_TMPDIR"]) and not os.path.exists("/tmp/ray/session_latest/sockets/raylet.lock")


def _worker_pids():
    out = subprocess.run(["pgrep", "-f", "ray::run_remote"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_a_killed_worker_is_retried_and_the_run_ends_identical(local_reference, ray_env, tmp_path):
    out = tmp_path / "out"
    driver = subprocess.Popen([sys.executable, "-m", "lth_tf.main", *TINY, f"--output_dir={out}",
                               f"--cache_dir={local_reference / 'cache'}", "--executor=ray"],
                              cwd=ROOT, env=ray_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed, deadline = 0, time.time() + 300
    while not killed and time.time() < deadline and driver.poll() is None:
        pids = _worker_pids()
        if pids:
            time.sleep(3.0)  # into the task's training
            for pid in _worker_pids():
                os.kill(pid, signal.SIGKILL)
                killed += 1
        time.sleep(0.3)
    output = driver.communicate(timeout=600)[0]
    assert killed >= 1 and driver.returncode == 0, output[-3000:]
    assert results(out) == results(local_reference / "out")


def test_a_killed_driver_resumes_on_rerun(local_reference, ray_env, tmp_path):
    out = tmp_path / "out"
    args = [sys.executable, "-m", "lth_tf.main", *TINY, f"--output_dir={out}",
            f"--cache_dir={local_reference / 'cache'}", "--executor=ray"]
    driver = subprocess.Popen(args, cwd=ROOT, env=ray_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    deadline = time.time() + 300
    while time.time() < deadline:
        done = [f for d, _, fs in os.walk(out) for f in fs if f == "metrics.json"] if out.exists() else []
        if done:
            break
        time.sleep(0.3)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    subprocess.run(["pkill", "-9", "-f", ray_env["RAY_TMPDIR"]], check=False)  # the cluster it had started
    proc = cli(args[3:], ray_env)
    assert "already done" in proc.stdout and " 0 already done" not in proc.stdout
    assert results(out) == results(local_reference / "out")


def test_a_node_lost_from_a_two_node_cluster_costs_only_its_tasks(local_reference, ray_env, tmp_path):
    """A head without CPUs and two 1-CPU nodes (ray.cluster_utils.Cluster); one node is removed while it
    trains a task. The driver runs in a subprocess that joins the cluster."""
    script = f"""
import os, sys, subprocess, time, threading
from ray.cluster_utils import Cluster
cluster = Cluster(initialize_head=True, head_node_args={{"num_cpus": 0}})
nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
cluster.wait_for_nodes()
def remove_one():
    deadline = time.time() + 240
    while time.time() < deadline:
        if subprocess.run(["pgrep", "-f", "ray::run_remote"], capture_output=True).stdout.strip():
            time.sleep(3.0)
            cluster.remove_node(nodes[1])
            print("REMOVED NODE", flush=True)
            return
        time.sleep(0.3)
threading.Thread(target=remove_one, daemon=True).start()
proc = subprocess.run([sys.executable, "-m", "lth_tf.main", *{TINY!r}, "--output_dir={tmp_path / 'out'}",
                       "--cache_dir={local_reference / 'cache'}", "--executor=ray",
                       "--ray_address=" + cluster.address], cwd={ROOT!r})
time.sleep(1)
cluster.shutdown()
sys.exit(proc.returncode)
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=ray_env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "REMOVED NODE" in proc.stdout and "ray: 3 node(s)" in proc.stdout
    assert results(tmp_path / "out") == results(local_reference / "out")
