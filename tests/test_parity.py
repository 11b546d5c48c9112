"""Fidelity to the original Video-LLaMA-2 pipeline: scripts/check_parity.py on the golden fixture it produced.

The fixture (../shared/parity, or GHOSTPROBE_PARITY_DIR) holds Meta's LLaMA-2 tokenizer, so it is read in place and
never committed; without it these tests skip, and .ci/run fails before running them.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import REPO_ROOT

PARITY_DIR = Path(os.environ.get("GHOSTPROBE_PARITY_DIR", REPO_ROOT.parent / "shared" / "parity"))
pytestmark = pytest.mark.skipif(
    not (PARITY_DIR / "cases.json").is_file(), reason=f"no parity fixture at {PARITY_DIR} (set GHOSTPROBE_PARITY_DIR)"
)


def check_parity(fixture: Path, summary: Path) -> tuple[subprocess.CompletedProcess, dict]:
    run = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts/check_parity.py"), f"fixture={fixture}", f"summary={summary}"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=summary.parent,
    )
    return run, json.loads(summary.read_text()) if summary.exists() else {}


def test_the_project_path_equals_the_original_on_every_case(tmp_path):
    run, summary = check_parity(PARITY_DIR, tmp_path / "summary.json")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert summary["ok"] and summary["failed"] == 0
    checked = {(row["subject"], row["check"]) for row in summary["rows"] if row["ok"]}
    cases = [case["id"] for case in json.loads((PARITY_DIR / "cases_spec.json").read_text())["cases"]]
    for case in cases:
        for check in (
            "prompt text",
            "token ids (converted folder)",
            "model input ids",
            "next-token logits",
            "P(yes) of score()",
            "greedy 8 tokens of generate()",
        ):
            assert (case, check) in checked, (case, check)
    assert ("video.mp4", "frames 28x28 (decoder resize)") in checked
    assert ("video.mp4", "frames 224x224 (decoder resize)") in checked
    assert not list(tmp_path.glob("*.log"))  # nothing left in the folder it ran from


def test_another_fixture_of_that_layout_is_checked_and_a_wrong_golden_value_fails(tmp_path):
    # The same outputs under another video name (any fixture of that layout works), with one greedy token of one
    # case altered: only that check may fail, and the exit code says so.
    fixture = tmp_path / "fixture"
    shutil.copytree(PARITY_DIR, fixture)
    for path in fixture.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    (fixture / "video.mp4").rename(fixture / "street.mp4")
    for name in ("video_frames_original.npy", "video_frames_original_28.npy"):
        (fixture / name).rename(fixture / name.replace("video_", "street_", 1))
    for file_name in ("cases.json", "cases_spec.json"):
        data = json.loads((fixture / file_name).read_text())
        for case in data["cases"]:
            case["video"] = "street.mp4"
        if file_name == "cases.json":
            data["cases"][0]["greedy"]["new_token_ids"][3] += 1
            altered = data["cases"][0]["id"]
        (fixture / file_name).write_text(json.dumps(data, ensure_ascii=False))
    logits = np.load(fixture / "logits" / "c_en_empty_system.npy")
    logits[123] += 1e-3
    np.save(fixture / "logits" / "c_en_empty_system.npy", logits)

    run, summary = check_parity(fixture, tmp_path / "summary.json")
    assert run.returncode == 1
    failed = {(row["subject"], row["check"]) for row in summary["rows"] if not row["ok"]}
    assert failed == {(altered, "greedy 8 tokens of generate()"), ("c_en_empty_system", "next-token logits")}
    assert f"FAIL  {altered}" in run.stdout and "2 of" in run.stderr
    assert ("street.mp4", "frames 28x28 (decoder resize)") not in failed
