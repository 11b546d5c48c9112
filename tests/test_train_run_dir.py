"""What keeps a run directory to one run: metrics rows of a stopped attempt dropped on resume, the run lock, and
ranks that end with their launcher. Fast (no training); the resume over a real run is in test_train_deepspeed.py."""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from ghostprobe.run_lock import LOCK_FILE, RunDirBusy, RunLock
from train.callbacks import JsonlMetrics
from train.checkpoints import drop_metrics_after

REPO = Path(__file__).resolve().parents[1]


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_resume_drops_metrics_rows_after_the_resumed_checkpoint(tmp_path):
    """A run killed at step 9 whose last complete checkpoint is 6: rows 7-9 and the line cut by the kill go, the
    resumed run's rows follow without duplicate steps."""
    rows = [{"step": s, "loss": 1.0 / s} for s in range(1, 10)] + [{"step": 6, "eval_loss": 0.5}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 10, "lo')

    assert drop_metrics_after(tmp_path, 6) == 4
    assert _rows(tmp_path) == [r for r in rows if r["step"] <= 6]
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]  # no temporary file left

    class State:
        is_world_process_zero, global_step = True, 7

    JsonlMetrics(tmp_path).on_log(None, State(), None, logs={"loss": 0.1})
    steps = [r["step"] for r in _rows(tmp_path) if "loss" in r]
    assert steps == list(range(1, 8))


def test_a_fresh_start_drops_every_row_and_a_clean_file_is_left_alone(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.9}\n')
    assert drop_metrics_after(tmp_path, 2) == 0 and path.read_text().count("\n") == 2
    assert drop_metrics_after(tmp_path, 0) == 2 and path.read_text() == ""
    assert drop_metrics_after(tmp_path / "missing", 0) == 0


def _hold_lock_in_a_child(run_dir: Path) -> subprocess.Popen:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from ghostprobe.run_lock import RunLock; "
            "lock = RunLock(Path(sys.argv[1])).acquire(); print('locked', flush=True); time.sleep(60)",
            str(run_dir),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_lock_of_a_killed_run_is_taken_over_with_a_warning_and_released_at_the_end(tmp_path, caplog):
    holder = _hold_lock_in_a_child(tmp_path)
    try:
        with pytest.raises(RunDirBusy) as busy:
            RunLock(tmp_path).acquire()
        assert str(tmp_path) in str(busy.value)
        assert f"pid {holder.pid} on host {socket.gethostname()}" in str(busy.value)
    finally:
        holder.kill()
        holder.wait()

    with caplog.at_level(logging.WARNING, logger="ghostprobe.run_lock"):
        with RunLock(tmp_path):
            record = json.loads((tmp_path / LOCK_FILE).read_text())
            assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
    assert f"taking over the lock left by pid {holder.pid}" in caplog.text
    assert not (tmp_path / LOCK_FILE).exists()  # a clean end leaves nothing to take over
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ghostprobe.run_lock"), RunLock(tmp_path):
        pass
    assert caplog.text == ""


@pytest.mark.slow
def test_a_second_training_run_on_the_same_folder_is_refused_at_start(tmp_path):
    """The real entry point (a world of one rank) while this test process holds the folder's lock."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with RunLock(run_dir):
        done = subprocess.run(
            [
                sys.executable,
                "train/main.py",
                "+exp=tiny_smoke",
                f"output_dir={run_dir}",
                "logger=none",
                "progress_bar=false",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            env={k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK")},
        )
    assert done.returncode == 1, done.stderr[-3000:]
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith(
        f"{run_dir} is in use by another training run (pid {os.getpid()} on host {socket.gethostname()}"
    ), done.stderr[-3000:]
    assert not (run_dir / "config.yaml").exists()  # refused before writing anything


# A stand-in for the processes `deepspeed` starts on one node: the `deepspeed` command -> launch -> a rank.
RUNNER = "import subprocess, sys; subprocess.Popen([sys.executable, sys.argv[1], *sys.argv[2:]]).wait()\n"
LAUNCH = "import subprocess, sys; subprocess.Popen([sys.executable, *sys.argv[1:]]).wait()\n"
RANK = """import json, logging, os, sys, time
from pathlib import Path
from train.launch import exit_when_launcher_dies, launcher_chain
logging.basicConfig()
exit_when_launcher_dies(poll_s=0.1)
Path(sys.argv[1] + ".tmp").write_text(json.dumps(launcher_chain()))
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(60)
"""


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # exited, not yet reaped
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("killed", ["deepspeed", "launch"])
def test_a_rank_exits_when_its_launcher_is_killed(tmp_path, killed):
    for name, source in (("deepspeed", RUNNER), ("launch.py", LAUNCH), ("rank.py", RANK)):
        (tmp_path / name).write_text(source)
    ready, log_path = tmp_path / "chain.json", tmp_path / "stderr.txt"
    with open(log_path, "w") as log_file:
        runner = subprocess.Popen(
            [
                sys.executable,
                str(tmp_path / "deepspeed"),
                str(tmp_path / "launch.py"),
                str(tmp_path / "rank.py"),
                str(ready),
            ],
            cwd=REPO,
            stderr=log_file,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    deadline = time.time() + 30
    while not ready.exists() and time.time() < deadline:
        time.sleep(0.1)
    (rank, launch), (_, runner_pid) = json.loads(ready.read_text())  # the pytest process above is not watched
    assert runner_pid == runner.pid
    try:
        time.sleep(0.5)
        assert not _gone(rank), "the rank ended while its launchers lived"
        os.kill(runner.pid if killed == "deepspeed" else launch, signal.SIGKILL)
        deadline = time.time() + 10
        while not _gone(rank) and time.time() < deadline:
            time.sleep(0.1)
        assert _gone(rank), f"the rank kept running after the {killed} process was killed"
        dead = runner.pid if killed == "deepspeed" else launch
        assert f"the launcher (pid {dead}) is gone: rank pid {rank} exits" in log_path.read_text()
    finally:
        for pid in (rank, launch, runner.pid):
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
        runner.wait()
