"""The labelling loop through a real Label Studio server (tests/label_studio_server.py): a weak label file and a
scan's exported alerts go in with `review.py to_label_studio`, two reviewers answer through the official SDK (in
Label Studio's own virtualenv), `review.py from_label_studio` gives a gold label file, and data prep takes it.

Needs `.venv-label-studio/` (`bash scripts/setup_label_studio.sh`): skipped without it, failed without it under CI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests

from data_prep.prepare import prepare_dataset
from ghostprobe.config import prep_settings
from ghostprobe.labels import load_labels
from ghostprobe.video import write_video
from helpers import REPO_ROOT, write_label_file
from label_studio_server import SETUP, VENV, Reviewer, label_studio_bin, sdk_python, start_server

pytestmark = pytest.mark.slow

ANA = Reviewer("ana@example.com", "ana-password-1", "ana0legacy0token")
BEN = Reviewer("ben@example.com", "ben-password-1", "ben0legacy0token")
PROJECT = "ghostprobe review test"
FPS = 10.0

# A reviewer's session, through label-studio-sdk: find the project, answer the tasks named in `answers`
# (clip_id -> annotation result, or "skip").
REVIEWER_SCRIPT = """
import json, sys
from label_studio_sdk import LabelStudio
url, token, title, answers = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
client = LabelStudio(base_url=url, api_key=token)
project = next(p for p in client.projects.list(title=title) if p.title == title)
for task in client.tasks.list(project=project.id):
    answer = answers.get(task.data["clip_id"])
    if answer == "skip":
        client.annotations.create(id=task.id, result=[], was_cancelled=True)
    elif answer is not None:
        client.annotations.create(id=task.id, result=answer)
"""


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """(server, document root): Label Studio serving local files from the document root, Ana and Ben its users."""
    if label_studio_bin() is None:
        how = f"Label Studio's test virtualenv is missing at {VENV}: create it with `{SETUP}` (~2 minutes, ~1 GB)"
        if os.environ.get("CI"):
            pytest.fail(how)
        pytest.skip(how)
    root = tmp_path_factory.mktemp("label_studio")
    media = root / "media"
    media.mkdir()
    server = start_server(root / "data", media, [ANA, BEN])
    yield server, media
    server.stop()


def frames(num_frames: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (num_frames, 64, 96, 3), dtype=np.uint8)


def choice(name: str, value: str) -> dict:
    return {"from_name": name, "to_name": "video", "type": "choices", "value": {"choices": [value]}}


def mark(label: str, start: int, end: int) -> dict:
    return {
        "from_name": "marks",
        "to_name": "video",
        "type": "timelinelabels",
        "value": {"ranges": [{"start": start, "end": end}], "timelinelabels": [label]},
    }


def review(command: str, *settings: str, token_env: str | None = None) -> subprocess.CompletedProcess:
    """`python data_prep/review.py COMMAND ...`; `token_env`: the token in LABEL_STUDIO_API_KEY (else none there)."""
    env = {k: v for k, v in os.environ.items() if k != "LABEL_STUDIO_API_KEY"}
    if token_env:
        env["LABEL_STUDIO_API_KEY"] = token_env
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "data_prep/review.py"), command, *settings],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def answer_as(server, token: str, answers: dict) -> None:
    subprocess.run(
        [str(sdk_python()), "-c", REVIEWER_SCRIPT, server.url, token, PROJECT, json.dumps(answers)],
        check=True,
        timeout=300,
    )


def test_weak_labels_and_scan_alerts_round_trip_to_gold(studio, tmp_path):
    server, media = studio
    weak_dir, scan_dir = media / "imported", media / "scan" / "exported"
    for k, clip_id in enumerate(("w_ghost", "w_split", "w_skip")):
        write_video(weak_dir / "clips" / f"{clip_id}.mp4", frames(40, k), FPS)
    write_video(weak_dir / "clips" / "w_open.avi", frames(20, 3), FPS, codec="mpeg4")  # played through a preview
    for k, clip_id in enumerate(("drive_a000", "drive_a001")):
        write_video(scan_dir / "clips" / f"{clip_id}.mp4", frames(30, 10 + k), FPS)
    source = {
        "dataset": "dota",
        "original_id": "0qfbmt4G8Rw_000306",
        "category_name": "pedestrian",
        "candidate_reason": "category",
    }
    weak = write_label_file(
        weak_dir / "labels.json",
        [
            {
                "clip_id": "w_ghost",
                "video": "clips/w_ghost.mp4",
                "label": "ghost_probing",
                "label_quality": "weak",
                "source": source,
                "event": {"t_first_visible_s": 1.0, "t_event_s": 2.0},
                "group": "g1",
            },
            *[
                {
                    "clip_id": Path(name).stem,
                    "video": f"clips/{name}",
                    "label": "other_hazard",
                    "label_quality": "weak",
                    "source": source | {"category_name": "vehicle"},
                }
                for name in ("w_split.mp4", "w_skip.mp4", "w_open.avi")
            ],
        ],
    )
    alerts = write_label_file(
        scan_dir / "labels.json",
        [  # as scan/main.py's export_alerts writes it
            {
                "clip_id": c,
                "video": f"clips/{c}.mp4",
                "label": None,
                "group": "drive",
                "notes": "TO LABEL: set label to one of ghost_probing, cut_in, other_hazard, normal",
            }
            for c in ("drive_a000", "drive_a001")
        ],
    )

    # Ana imports with a personal access token (the current flow), from the environment as documented.
    pat = server.personal_token(ANA)
    common = [f"url={server.url}", f"project={PROJECT}", f"document_root={media}", "reviewers_per_task=2"]
    run = review("to_label_studio", f"labels={weak}", f"out={tmp_path / 'weak_tasks.json'}", *common, token_env=pat)
    assert run.returncode == 0, run.stderr + run.stdout
    assert "created project" in run.stdout and "4 tasks added" in run.stdout
    run = review("to_label_studio", f"labels={alerts}", *common, token_env=pat)
    assert run.returncode == 0, run.stderr + run.stdout
    assert "updated project" in run.stdout and "2 tasks added" in run.stdout
    run = review("to_label_studio", f"labels={weak}", *common, token_env=pat)  # again: nothing doubles
    assert "0 tasks added, 0 updated, 4 already there" in run.stdout, run.stderr + run.stdout

    ben = {"Authorization": f"Token {BEN.legacy_token}"}
    project = requests.get(f"{server.url}/api/projects/", params={"title": PROJECT}, headers=ben, timeout=60).json()[
        "results"
    ][0]
    # The weak labels come pre-filled as predictions (the scan's alerts have no label to offer); two answers a task.
    assert (project["task_number"], project["total_predictions_number"], project["maximum_annotations"]) == (6, 4, 2)

    # The server plays the clip from its document root to a logged-in reviewer.
    tasks = json.loads((tmp_path / "weak_tasks.json").read_text())
    served = requests.get(server.url + tasks[0]["data"]["video"], headers=ben, timeout=60)
    assert served.status_code == 200 and served.content == (weak_dir / "clips" / "w_ghost.mp4").read_bytes()
    preview = next(t["data"]["video"] for t in tasks if t["data"]["clip_id"] == "w_open")
    served = requests.get(server.url + preview, headers=ben, timeout=60)
    assert served.status_code == 200 and served.content == (media / "review_previews" / "w_open.mp4").read_bytes()

    # Frames from 1 at 10 fps: 11 -> 1.0 s, 16 -> 1.5 s, 26 -> 2.5 s.
    answer_as(
        server,
        pat,
        {
            "w_ghost": [
                choice("label", "ghost_probing"),
                mark("actor visible", 11, 11),
                mark("in path", 16, 26),
                choice("actor", "child"),
            ],
            "w_split": [choice("label", "normal")],
            "drive_a000": [choice("label", "cut_in")],
            "drive_a001": [choice("label", "ghost_probing")],  # no marks: the schema rejects it
        },
    )
    answer_as(
        server,
        BEN.legacy_token,
        {
            "w_ghost": [choice("label", "ghost_probing"), mark("actor visible", 13, 13), mark("in path", 16, 16)],
            "w_split": [choice("label", "other_hazard")],
            "w_skip": "skip",
        },
    )

    gold_file = media / "gold.json"
    run = review(
        "from_label_studio", f"url={server.url}", f"token={BEN.legacy_token}", f"project={PROJECT}", f"out={gold_file}"
    )
    assert run.returncode == 1, run.stderr + run.stdout  # one answer was rejected; the file is still written
    gold = {clip.clip_id: clip for clip in load_labels(gold_file).clips}
    assert sorted(gold) == ["drive_a000", "w_ghost"]
    ghost = gold["w_ghost"]
    assert (ghost.label, ghost.quality, ghost.video) == ("ghost_probing", "gold", "imported/clips/w_ghost.mp4")
    # Two reviewers who agree: their marks' mean (1.0 and 1.2 s; 1.5 s; Ana's end 2.5 s).
    assert (ghost.event.t_first_visible_s, ghost.event.t_event_s, ghost.event.t_end_s) == (1.1, 1.5, 2.5)
    assert ghost.event.actor == "child" and ghost.group == "g1"
    assert (ghost.source.dataset, ghost.source.original_id) == ("dota", "0qfbmt4G8Rw_000306")
    assert (ghost.source.reviewer, ghost.source.tool) == ("ana@example.com, ben@example.com", "label_studio")
    assert ghost.source.reviewed_at.startswith("20")
    alert = gold["drive_a000"]
    assert (alert.label, alert.video, alert.source.reviewer) == (
        "cut_in",
        "scan/exported/clips/drive_a000.mp4",
        "ana@example.com",
    )
    out = run.stdout
    assert "agreement: 1 of 2 tasks with several reviewers gave the same label (50.0%)" in out
    assert "(clip w_split): reviewers disagree (ana@example.com: normal, ben@example.com: other_hazard)" in out
    assert "(clip w_skip): skipped by ben@example.com" in out
    assert "(clip w_open): not reviewed yet" in out
    rejected = next(line for line in out.splitlines() if "drive_a001" in line)
    assert rejected.strip().startswith(f"{server.url}/projects/")  # named like any bad label: where, clip, field
    assert "clip 'drive_a001', field event: required for label 'ghost_probing' but missing" in out

    report = prepare_dataset(gold_file, tmp_path / "prepared", prep_settings(frame_size=32))
    assert report["num_prepared"] == 2 and report["rejected"] == [], report["rejected"]
