"""scripts/compare_scores.py: how far runs of one checkpoint on other devices or dtypes are from a reference run."""

import subprocess
import sys

from ghostprobe.runs import load_run
from helpers import REPO_ROOT, make_run_dir


def compare(*runs):
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts/compare_scores.py"), "--reference", *map(str, runs)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_equal_runs_show_no_gap_and_other_scores_show_theirs(tmp_path):
    reference = make_run_dir(tmp_path / "cpu", tmp_path / "ds", seed=0, no_answer=(), gallery_size=0)
    same = make_run_dir(tmp_path / "same", tmp_path / "ds", seed=0, no_answer=(3,), gallery_size=0)
    other = make_run_dir(tmp_path / "other", tmp_path / "ds", seed=7, no_answer=(), gallery_size=0)
    lines = compare(reference, same, other)
    assert lines[0].startswith(f"reference {reference}: cpu")
    n = len(load_run(reference)[1])
    assert f"{n - 1} clips, |P(yes) - reference| max 0.00e+00" in lines[1] and "answers differ on 0 []" in lines[1]
    assert "unscored 1" in lines[1]  # clip 3 has no score in that run: left out of the gaps, counted here
    ref = {r["sample_id"]: r["p_ghost_probing"] for r in load_run(reference)[1]}
    new = {r["sample_id"]: r["p_ghost_probing"] for r in load_run(other)[1]}
    largest = max(abs(new[k] - ref[k]) for k in ref)
    flipped = sum((new[k] >= 0.5) != (ref[k] >= 0.5) for k in ref)
    assert f"{n} clips, |P(yes) - reference| max {largest:.2e}" in lines[2]
    assert f"answers differ on {flipped} " in lines[2] and flipped > 0
