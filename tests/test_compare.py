"""eval/compare.py: runs side by side on their common clips, McNemar and paired-bootstrap AUROC per pair,
clips missing from a run named, a directory without metrics.json named."""

import json
import re
import shutil
import subprocess
import sys

import pytest

from eval.compare import compare_runs, verdict
from ghostprobe.metrics import mcnemar_test, paired_bootstrap_auroc
from helpers import CLIP_IDS, REPO_ROOT, make_run_dir, write_frames_dataset


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    dataset = write_frames_dataset(root / "dataset")
    # B lacks two clips and answered different ones: the comparison must use the 34 clips both have.
    a = make_run_dir(root / "a", dataset, model="videollama2_7b_finetuned", skill=1.6, seed=1, no_answer=(3,))
    b = make_run_dir(
        root / "b",
        dataset,
        model="gpt4o",
        skill=0.6,
        seed=2,
        no_answer=(5, 30),
        clip_ids=[c for c in CLIP_IDS if c not in ("clip010", "clip025")],
    )
    return a, b


def predictions(run_dir):
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    return {r["clip_id"]: r for r in rows if r["split"] == "test"}


def test_two_runs_side_by_side_with_the_library_mcnemar_p(two_runs, tmp_path):
    a, b = two_runs
    result = compare_runs([a, b], tmp_path, n_resamples=300)
    md = (tmp_path / "comparison.md").read_text()
    assert "videollama2_7b_finetuned" in md and "gpt4o" in md
    assert result["n_common"] == 34 and result["missing_clip_ids"] == {"gpt4o": ["clip010", "clip025"]}
    assert "gpt4o lacks 2: clip010, clip025" in md

    # discordant counts by hand, from the predictions and each run's own threshold
    rows_a, rows_b = predictions(a), predictions(b)
    thr_a = json.loads((a / "metrics.json").read_text())["threshold"]["value"]
    thr_b = json.loads((b / "metrics.json").read_text())["threshold"]["value"]
    only_a = only_b = 0
    for clip in sorted(set(rows_a) & set(rows_b)):
        pa, pb = rows_a[clip]["p_ghost_probing"], rows_b[clip]["p_ghost_probing"]
        if pa is None or pb is None:
            continue
        truth = rows_a[clip]["is_ghost_probing"]
        right_a, right_b = (pa >= thr_a) == truth, (pb >= thr_b) == truth
        only_a += right_a and not right_b
        only_b += right_b and not right_a
    expected = mcnemar_test(only_a, only_b)
    pair = result["pairs"][0]
    assert (pair["a"], pair["b"]) == ("videollama2_7b_finetuned", "gpt4o")
    assert pair["decisions"]["mcnemar"] == expected
    assert pair["decisions"]["n"] == 34 - 3  # clip003 (A) and clip005, clip030 (B) have no answer
    row = next(line for line in md.splitlines() if line.startswith("| videollama2_7b_finetuned vs gpt4o | 31 |"))
    assert f"| {only_a} | {only_b} |" in row and f"| {expected['p_value']:.4f} |" in row
    reading = pair["decisions"]["verdict"]["reading"]
    assert reading.replace("<", "&lt;") in row and reading.startswith(
        "inconclusive" if expected["p_value"] >= 0.05 else "videollama2_7b_finetuned is better than gpt4o"
    )

    common = sorted(set(rows_a) & set(rows_b))
    labels = {c: rows_a[c]["is_ghost_probing"] for c in common}
    auroc = paired_bootstrap_auroc(
        labels,
        {c: rows_a[c]["p_ghost_probing"] for c in common},
        {c: rows_b[c]["p_ghost_probing"] for c in common},
        n_resamples=300,
    )
    assert pair["auroc"]["difference"] == pytest.approx(auroc["difference"])
    assert pair["auroc"]["p_value"] == pytest.approx(auroc["p_value"])
    assert f"{auroc['difference']:.3f} [{auroc['ci_low']:.3f}, {auroc['ci_high']:.3f}]" in md

    html = (tmp_path / "comparison.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert all(s.startswith("data:image/png;base64,") for s in re.findall(r'<img src="([^"]*)"', html))


def test_same_model_twice_is_told_apart_by_prompt(two_runs, tmp_path):
    a, _ = two_runs
    en = make_run_dir(tmp_path / "en", tmp_path / "no-dataset", prompt="en", seed=4)
    result = compare_runs([a, en], tmp_path / "out", n_resamples=50)
    assert [r["name"] for r in result["runs"]] == ["videollama2_7b_finetuned / zh", "videollama2_7b_finetuned / en"]
    assert result["missing_clip_ids"] == {}


def test_a_dir_without_metrics_is_named(two_runs, tmp_path):
    a, _ = two_runs
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "predictions.jsonl").write_text("")
    with pytest.raises(FileNotFoundError, match=f"{re.escape(str(unfinished))}: no metrics.json"):
        compare_runs([a, unfinished], tmp_path / "out")
    with pytest.raises(ValueError, match="at least two runs"):
        compare_runs([a], tmp_path / "out")


def test_cli_with_hydra_list_of_runs(two_runs, tmp_path):
    a, b = two_runs
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "eval" / "compare.py"),
            f"runs=[{a},{b}]",
            f"output_dir={out}",
            "bootstrap_resamples=100",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "compared 2 runs on 34 common clips" in done.stdout
    assert json.loads((out / "comparison.json").read_text())["pairs"][0]["auroc"]["n_resamples"] == 100
    assert (out / "comparison.html").exists()


def test_a_run_is_called_better_only_when_the_paired_test_says_so():
    assert verdict(0.01, 1, 0.05, "13B", "7B", 80) == {
        "reading": "13B is better than 7B (p = 0.01 < 0.05)",
        "p_adjusted": 0.01,
        "significant": True,
    }
    three_pairs = verdict(0.03, 3, 0.05, "prompt A", "prompt B", 80)  # Bonferroni over 3 pairs: 0.09
    assert not three_pairs["significant"] and three_pairs["p_adjusted"] == pytest.approx(0.09)
    assert three_pairs["reading"] == "inconclusive: 80 clips do not tell them apart (p = 0.09)"
    assert verdict(float("nan"), 1, 0.05, "a", "b", 0)["reading"] == "not testable"


def test_a_truncated_metrics_json_is_named_by_report_and_compare(two_runs, tmp_path):
    a, b = two_runs
    cut = tmp_path / "cut"
    shutil.copytree(b, cut)
    text = (cut / "metrics.json").read_text()
    (cut / "metrics.json").write_text(text[: len(text) // 2])  # what an in-place write on a full disk left
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "eval" / "compare.py"), f"runs=[{a},{cut}]", f"output_dir={tmp_path / 'out'}"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"compare: {cut / 'metrics.json'} cannot be read (JSONDecodeError" in done.stderr
    report = subprocess.run(
        [sys.executable, str(REPO_ROOT / "eval" / "report.py"), f"run_dir={cut}"], capture_output=True, text=True
    )
    assert report.returncode == 1 and f"report: {cut / 'metrics.json'} cannot be read" in report.stderr
