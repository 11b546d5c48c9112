"""A real Label Studio server for the review tests: the pip package in its own virtualenv
(`bash scripts/setup_label_studio.sh` makes `.venv-label-studio/`), started on a free local port with its own data
folder, offline (no version check, no analytics), serving local files from a document root the test chooses."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from helpers import REPO_ROOT

VENV = Path(os.environ.get("GHOSTPROBE_LABEL_STUDIO_VENV", REPO_ROOT / ".venv-label-studio"))
SETUP = "bash scripts/setup_label_studio.sh"
START_TIMEOUT_S = 300  # a fresh database migrates for a minute or more on a busy 2-core machine


@dataclass
class Reviewer:
    email: str
    password: str
    legacy_token: str


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path
    env: dict

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def personal_token(self, reviewer: Reviewer) -> str:
        """A personal access token for `reviewer` (Account & Settings > Personal Access Token in the UI): created
        through the API, authenticated by the reviewer's legacy token (enabled for the test's organisation)."""
        reply = requests.post(
            f"{self.url}/api/token/", headers={"Authorization": f"Token {reviewer.legacy_token}"}, timeout=60
        )
        reply.raise_for_status()
        return reply.json()["token"]


def label_studio_bin() -> Path | None:
    """The label-studio command of the test virtualenv, when it is set up."""
    path = VENV / "bin" / "label-studio"
    return path if path.exists() and (VENV / ".ghostprobe-installed").exists() else None


def sdk_python() -> Path:
    """The test virtualenv's Python, which has `label-studio-sdk` (Label Studio depends on it)."""
    return VENV / "bin" / "python"


def start_server(data_dir: Path, document_root: Path, reviewers: list[Reviewer]) -> Server:
    """Label Studio on 127.0.0.1 with a free port and `data_dir` as its data folder, the reviewers created (the first
    is the organisation's owner; legacy tokens are enabled for the organisation so the test can bootstrap a personal
    access token), local files served from `document_root`."""
    binary = label_studio_bin()
    template = VENV / "template-data"  # the setup script's migrated empty database: a fresh one takes a minute
    if template.exists():
        shutil.copytree(template, data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(document_root),
        "DJANGO_DEBUG": "false",
    }
    common = ["--data-dir", str(data_dir), "--no-browser"]
    log = data_dir / "server.log"
    owner, others = reviewers[0], reviewers[1:]
    for reviewer in others:  # `init` creates a user in the (only) organisation; the first call creates it
        subprocess.run(
            [
                str(binary),
                "init",
                *common,
                "--username",
                reviewer.email,
                "--password",
                reviewer.password,
                "--user-token",
                reviewer.legacy_token,
                "--enable-legacy-api-token",
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            timeout=600,
        )
    port = _free_port()
    with open(log, "w") as out:
        process = subprocess.Popen(
            [
                str(binary),
                "start",
                *common,
                "--internal-host",
                "127.0.0.1",
                "--port",
                str(port),
                "--username",
                owner.email,
                "--password",
                owner.password,
                "--user-token",
                owner.legacy_token,
                "--enable-legacy-api-token",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log, env)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Label Studio exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{server.url}/health", timeout=5).status_code == 200:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"Label Studio did not answer within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
