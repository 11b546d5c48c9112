"""eval/anticipation.py: a run's window scores put on the video's frames, every protocol computed on them, the table
with the published records and their sources, and the report showing it."""

import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from eval.anticipation import anticipation_results, load_window_clips, run_anticipation
from eval.report import write_report
from ghostprobe.config import compose
from ghostprobe.metrics.anticipation import corrected_ap_mtta
from helpers import REPO_ROOT, make_run_dir, write_frames_dataset

FPS, FRAMES = 10.0, 40
# Window scores (window ends 2.0, 2.5, ... s); None: the model gave no answer for that window.
WINDOWS = {
    "e_pos1": (True, [0.2, 0.6, 0.8, 0.9]),  # event at 3.5 s: windows up to 3.5 s
    "e_pos2": (True, [0.1, 0.3, None, 0.7]),
    "e_neg1": (False, [0.1, 0.2, 0.5, 0.2, 0.1]),  # 4 s clips: windows up to 4.0 s
    "e_neg2": (False, [0.3, 0.3, 0.3, 0.4, 0.85]),
}
# The same scores on the 40 frames by hand: frame i holds the window ending at or before i / 10 s.
FRAMES_BY_HAND = {
    "e_pos1": [np.nan] * 20 + [0.2] * 5 + [0.6] * 5 + [0.8] * 5 + [0.9] * 5,
    "e_pos2": [np.nan] * 20 + [0.1] * 5 + [0.3] * 10 + [0.7] * 5,  # the unanswered 3.0 s window keeps 0.3
    "e_neg1": [np.nan] * 20 + [0.1] * 5 + [0.2] * 5 + [0.5] * 5 + [0.2] * 5,  # 4.0 s comes after the last frame
    "e_neg2": [np.nan] * 20 + [0.3] * 15 + [0.4] * 5,
}


def settings(**overrides) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(
        compose("anticipation", ["run_dir=unused", *(f"{k}={v}" for k, v in overrides.items())]), resolve=True
    )


@pytest.fixture
def run_with_windows(tmp_path):
    """A finished eval run (helpers.make_run_dir) whose predictions also hold an earliness split of window rows."""
    run = make_run_dir(tmp_path / "run", write_frames_dataset(tmp_path / "dataset"), gallery_size=0)
    metrics = json.loads((run / "metrics.json").read_text())
    with open(run / "predictions.jsonl", "a", encoding="utf-8") as f:
        for clip_id, (positive, scores) in WINDOWS.items():
            for k, p in enumerate(scores):
                f.write(
                    json.dumps(
                        {
                            "key": f"k:earliness:{clip_id}#w{k}",
                            "split": "earliness",
                            "model": metrics["model"],
                            "prompt": metrics["prompt"],
                            "data_fingerprint": metrics["data"]["fingerprint"],
                            "sample_id": f"{clip_id}#w{k}",
                            "clip_id": clip_id,
                            "window_index": k,
                            "window_end_s": 2.0 + 0.5 * k,
                            "is_ghost_probing": positive,
                            "label": "normal",
                            "t_event_s": 3.5 if positive else None,
                            "t_first_visible_s": 2.0 if positive else None,
                            "video_fps": FPS,
                            "video_num_frames": FRAMES,
                            "p_ghost_probing": p,
                            "error": None if p is not None else "no score",
                        }
                    )
                    + "\n"
                )
    write_report(run)
    return run


def test_window_scores_are_put_on_the_frames_as_by_hand(run_with_windows):
    _, clips, split = load_window_clips(run_with_windows)
    assert split == "earliness" and [c.clip_id for c in clips] == sorted(WINDOWS)
    for clip in clips:
        np.testing.assert_array_equal(clip.frames(), FRAMES_BY_HAND[clip.clip_id])


def test_every_protocol_on_the_frames(run_with_windows):
    _, clips, _ = load_window_clips(run_with_windows)
    result = anticipation_results(clips, settings(far_max="[0.1,0.3]"))
    ids = sorted(WINDOWS)  # e_neg1, e_neg2, e_pos1, e_pos2
    labels = [WINDOWS[c][0] for c in ids]
    by_hand = corrected_ap_mtta([FRAMES_BY_HAND[c] for c in ids], labels, [40, 40, 35, 35], FPS, ids)
    assert {k: v for k, v in result["corrected"].items() if k not in ("excluded", "notes")} == pytest.approx(
        {k: v for k, v in by_hand.items() if k not in ("excluded", "notes")}
    )
    # Counted maxima: neg1 .5, neg2 .4, pos1 .8, pos2 .3 (frames before 3.5 s: not its .7) -> sklearn's AP .75.
    assert result["corrected"]["ap"] == pytest.approx(0.75)
    assert result["corrected"]["ap"] == pytest.approx(average_precision_score(labels, [0.5, 0.4, 0.8, 0.3]))
    # 150 counted frames, about 700 usable thresholds: the reference function fails, and the table says so.
    assert "more usable thresholds than the 150 counted frames" in result["ustring"]["error"]
    # FAR: 40 negative frames; the top five (.5) already give 12.5%, so FAR <= 0.1 keeps nothing.
    assert result["far"]["0.1"]["auc"] is None and "no threshold keeps" in result["far"]["0.1"]["notes"][-1]
    # FAR <= 0.3 keeps the five .5 and five .4 frames; from the anomaly start (2.0 s, frame 20) pos1 alerts at
    # frame 25 (1.0 s before the event) at both, pos2 never: recall .5, mean TTA .5 s.
    far = result["far"]["0.3"]
    assert (far["n_thresholds"], far["auc"], far["mtta_s"]) == (10, 0.5, pytest.approx(0.5))
    # Nexar: positives at 3.0 / 2.5 / 2.0 s, negatives at 3.5 / 3.0 / 2.5 s (the same distance from their end).
    at = {"0.5": [0.2, 0.4, 0.8, 0.3], "1": [0.5, 0.3, 0.6, 0.3], "1.5": [0.2, 0.3, 0.2, 0.1]}
    expected = {h: average_precision_score(labels, s) for h, s in at.items()}
    assert result["nexar"]["ap_by_horizon"] == pytest.approx(expected)
    assert result["nexar"]["map"] == pytest.approx(np.mean(list(expected.values())))


def test_the_table_shows_records_with_sources_and_reaches_the_report(run_with_windows):
    result = run_anticipation(run_with_windows, settings(), "all")
    md = (run_with_windows / "anticipation.md").read_text()
    assert "UString evaluation, reproduced with its quirks" in md and "Project's corrected AP / mTTA" in md
    assert "91.2 (DAD) [1]" in md and "4.59 s (DAD) [1]" in md and "0.838 (MM-AU CAP) [2]" in md
    assert "0.886 (Nexar (public leaderboard)) [3]" in md and "arXiv 2510.22260" in md
    assert f"| mAP | {result['nexar']['map']:.3f} |" in md
    assert "UString evaluation not computed: more usable thresholds" in md
    report = (run_with_windows / "report.md").read_text()
    assert "## Accident-anticipation protocols" in report and "91.2 (DAD)" in report
    assert (
        json.loads((run_with_windows / "anticipation.json").read_text())["corrected"]["ap"] == result["corrected"]["ap"]
    )


def test_command_line_protocol_choice_and_a_run_without_windows(run_with_windows, tmp_path):
    def cli(*args):
        return subprocess.run(
            [sys.executable, str(REPO_ROOT / "eval/anticipation.py"), *args],
            capture_output=True,
            text=True,
            timeout=300,
        )

    nexar = cli(f"run_dir={run_with_windows}", "protocol=nexar")
    assert nexar.returncode == 0, nexar.stderr
    assert "Nexar collision prediction" in nexar.stdout and "UString" not in nexar.stdout
    plain = make_run_dir(tmp_path / "plain", tmp_path / "no-dataset", gallery_size=0)
    failed = cli(f"run_dir={plain}")
    assert failed.returncode == 1 and "scored no windows" in failed.stderr and "data.earliness_path=" in failed.stderr
    wrong = cli(f"run_dir={run_with_windows}", "protocol=dad")
    assert wrong.returncode == 1 and "protocol=dad: choose one of ustring, far, nexar, all" in wrong.stderr


@pytest.mark.slow
def test_end_to_end_from_a_sliding_dataset(tmp_path, tiny_checkpoint):
    """Synthetic clips prepared whole and with sliding windows, eval/run.py with data.earliness_path=, then the
    table: the prediction rows carry what puts windows on frames, and the report shows the protocols."""
    from data_prep.prepare import prepare_dataset
    from ghostprobe.config import prep_settings
    from ghostprobe.synth import generate

    generate(out_dir=tmp_path / "clips", num_clips=10, seed=3, fps=10, duration_s=5.0, width=96, height=64)
    for name, sampling in (("whole", "uniform"), ("sliding", "sliding")):
        report = prepare_dataset(
            tmp_path / "clips" / "labels.json", tmp_path / name, prep_settings(frame_size=32, sampling=sampling)
        )
        assert report["num_rejected"] == 0, report["rejected"]
    run = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "eval/run.py"),
            "wandb.mode=disabled",
            "model=tiny",
            f"model.path={tiny_checkpoint}",
            f"data.path={tmp_path / 'whole'}",
            "data.split=train",
            f"data.earliness_path={tmp_path / 'sliding'}",
            f"output_dir={run}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = subprocess.run(
        [sys.executable, str(REPO_ROOT / "eval/anticipation.py"), f"run_dir={run}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert table.returncode == 0, table.stderr[-3000:]
    _, clips, split = load_window_clips(run)
    assert split == "earliness" and all(c.fps == 10.0 and c.num_frames == 50 for c in clips)
    doc = json.loads((run / "anticipation.json").read_text())
    assert doc["clips"] == len(clips) and 0 <= doc["corrected"]["ap"] <= 1 and doc["nexar"]["map"] is not None
    assert "| Nexar collision prediction" in table.stdout
    assert "## Accident-anticipation protocols" in (run / "report.md").read_text()
