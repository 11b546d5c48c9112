"""eval/import_predictions.py: another system's CSV / JSONL answers become a run that eval/compare.py pairs with a
project run; unmatched and malformed rows are listed by line and why, clips the file lacks are listed too."""

import csv
import json
import subprocess
import sys

import pytest

from eval.compare import compare_runs
from ghostprobe.files import read_jsonl
from helpers import REPO_ROOT


def run_script(script, *args):
    return subprocess.run([sys.executable, str(REPO_ROOT / script), *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def project_run(tmp_path_factory, synthetic_dataset, tiny_checkpoint):
    out = tmp_path_factory.mktemp("project") / "run"
    result = run_script(
        "eval/run.py",
        "wandb.mode=disabled",
        "model=tiny",
        f"model.path={tiny_checkpoint}",
        f"data.path={synthetic_dataset}",
        f"output_dir={out}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def test_clips(synthetic_dataset):
    from datasets import load_from_disk

    split = load_from_disk(str(synthetic_dataset))["test"]
    return dict(zip(split["clip_id"], split["is_ghost_probing"], strict=True))


def write_study_csv(path, clips: dict) -> dict:
    """A GPT-4o study's CSV: three malformed rows first (their clips come back later in good rows), every test clip
    but the last with answers in the spellings such files have (some ids with the video's extension), then an unknown
    id and a second row for a clip. Returns what the test checks against."""
    ids = sorted(clips)
    rows = [
        {"video_id": ids[1], "answer": "maybe", "score": 0.5, "latency": 1.0},
        {"video_id": ids[0], "answer": "yes", "score": 1.7, "latency": 1.0},
        {"video_id": "", "answer": "yes", "score": 0.9, "latency": 1.0},
    ]
    spellings = ["YES", "no", "True", "FALSE", "1", "0", "Yes", "nO"]
    expected = {}
    for k, clip_id in enumerate(ids[:-1]):
        answer = spellings[k % len(spellings)]
        says_yes = answer.lower() in ("yes", "true", "1")
        score = 0.8 if says_yes else 0.2
        rows.append(
            {
                "video_id": f"{clip_id}.mp4" if k % 2 == 0 else clip_id,
                "answer": answer,
                "score": score,
                "latency": 2.5 + k,
            }
        )
        expected[clip_id] = (says_yes, score, 2.5 + k)
    rows += [
        {"video_id": "not_a_clip.avi", "answer": "yes", "score": 0.9, "latency": 1.0},
        {"video_id": ids[0], "answer": "no", "score": 0.1, "latency": 1.0},
    ]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["video_id", "answer", "score", "latency"])
        writer.writeheader()
        writer.writerows(rows)
    return {"answers": expected, "left_out": ids[-1], "n_rows": len(rows)}


def test_csv_import_lists_what_it_could_not_use_and_compares_paired(
    tmp_path, synthetic_dataset, test_clips, project_run
):
    study = write_study_csv(tmp_path / "study.csv", test_clips)
    out = tmp_path / "imported"
    result = run_script(
        "eval/import_predictions.py",
        f"file={tmp_path / 'study.csv'}",
        "model_name=gpt-4o-study",
        f"data.path={synthetic_dataset}",
        f"output_dir={out}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    n = len(test_clips) - 1
    ids = sorted(test_clips)
    # Lines count the header as line 1: malformed rows on lines 2-4, the good rows from line 5.
    after = n + 5
    assert f"imported {n} of {study['n_rows']} rows" in result.stdout
    assert f"malformed: line 2: {ids[1]}: answer 'maybe' is not one of yes/no/true/false/1/0" in result.stderr
    assert f"malformed: line 3: {ids[0]}: score '1.7' is outside [0, 1]" in result.stderr
    assert "malformed: line 4: -: no video_id" in result.stderr
    assert f"unmatched: line {after}: not_a_clip.avi: matches no clip of the dataset" in result.stderr
    assert f"malformed: line {after + 1}: {ids[0]}: clip {ids[0]} already given at line 5" in result.stderr

    metrics = json.loads((out / "metrics.json").read_text())
    info = metrics["imported"]
    assert info["matched"] == n and info["clips_without_row"] == [study["left_out"]]
    assert [m["line"] for m in info["malformed"]] == [2, 3, 4, after + 1]
    assert info["latency_given"] and not info["cost_given"]
    assert metrics["model"] == "gpt-4o-study" and metrics["prompt"] == "imported"
    project = json.loads((project_run / "metrics.json").read_text())
    assert metrics["data"]["fingerprint"] == project["data"]["fingerprint"]  # same dataset: paired without a note
    rows = {r["clip_id"]: r for r in read_jsonl([out / "predictions.jsonl"]) if r["split"] == "test"}
    assert len(rows) == n and all(r["imported"] for r in rows.values())
    for clip_id, (says_yes, score, latency) in study["answers"].items():
        row = rows[clip_id]
        assert (row["parsed_answer"], row["p_ghost_probing"], row["latency_s"]) == (says_yes, score, latency)
        assert row["is_ghost_probing"] == test_clips[clip_id] and row["error"] is None
    assert metrics["timing"]["latency_p50_s"] == pytest.approx(2.5 + (n - 1) / 2)
    assert (out / "report.html").is_file()

    comparison = compare_runs([project_run, out], tmp_path / "compare", n_resamples=200)
    assert comparison["n_common"] == n
    assert comparison["missing_clip_ids"] == {"gpt-4o-study": [study["left_out"]]}
    pair = comparison["pairs"][0]
    assert (pair["a"], pair["b"]) == ("tiny_video_llama", "gpt-4o-study")
    # McNemar by hand: each run at its own threshold; the study's scores .8 / .2 put it on its answers.
    threshold = project["threshold"]["value"]
    project_rows = {r["clip_id"]: r for r in read_jsonl([project_run / "predictions.jsonl"]) if r["split"] == "test"}
    only_a = only_b = 0
    for clip_id, (says_yes, _, _) in study["answers"].items():
        truth = test_clips[clip_id]
        right_a = (project_rows[clip_id]["p_ghost_probing"] >= threshold) == truth
        right_b = says_yes == truth
        only_a += right_a and not right_b
        only_b += right_b and not right_a
    assert (pair["decisions"]["only_a_right"], pair["decisions"]["only_b_right"]) == (only_a, only_b)
    assert pair["decisions"]["n"] == n and pair["auroc"]["n"] == n


def test_jsonl_answers_only_without_latency(tmp_path, synthetic_dataset, test_clips):
    ids = sorted(test_clips)
    lines = [json.dumps({"id": clip_id, "verdict": ["No", "yes", 1, False][k % 4]}) for k, clip_id in enumerate(ids)]
    lines[3] = json.dumps({"id": ids[3], "verdict": ""})  # the other system gave nothing for this clip
    lines.append("{not json")
    (tmp_path / "lab.jsonl").write_text("\n".join(lines) + "\n")
    from eval.import_predictions import import_predictions
    from ghostprobe.config import compose

    cfg = compose(
        "import_predictions",
        [
            f"file={tmp_path / 'lab.jsonl'}",
            "model_name=other-lab",
            f"data.path={synthetic_dataset}",
            f"output_dir={tmp_path / 'out'}",
            "id_column=id",
            "answer_column=verdict",
        ],
    )
    metrics = import_predictions(cfg)
    assert metrics["imported"]["malformed"] == [
        {
            "line": len(ids) + 1,
            "id": None,
            "reason": "not a JSON object (Expecting property name enclosed in double quotes)",
        }
    ]
    assert metrics["threshold"]["scores"] == "parsed answers"
    # no latency in the file: response time is not measured, and only the clip without an answer failed
    timing = metrics["timing"]
    assert timing["latency_p95_s"] is None and timing["n_failed"] == 1
    assert timing["wall_source"] == "not measured (imported without latency)"
    assert metrics["classification"]["model"]["n_missing"] == 1
    assert metrics["errors"] == [{"sample_id": ids[3], "error": "no answer or score in lab.jsonl line 4"}]
    text = (tmp_path / "out" / "predictions.jsonl").read_text()
    assert "NaN" not in text  # strict JSON, as eval/run.py writes it: no score is null, never 0
    row = next(r for r in map(json.loads, text.splitlines()) if r["clip_id"] == ids[3])
    assert row["p_ghost_probing"] is None and row["parsed_answer"] is None and row["imported"]


def test_file_and_folder_problems_are_named(tmp_path, synthetic_dataset, project_run):
    (tmp_path / "wrong.csv").write_text("clip,answer\nx,yes\n")
    result = run_script(
        "eval/import_predictions.py",
        f"file={tmp_path / 'wrong.csv'}",
        "model_name=m",
        f"data.path={synthetic_dataset}",
        f"output_dir={tmp_path / 'o'}",
    )
    assert (
        result.returncode == 1 and "has no column 'video_id' (id_column=); its columns: answer, clip" in result.stderr
    )
    (tmp_path / "ok.csv").write_text("video_id,answer\nnothing_here,yes\n")
    result = run_script(
        "eval/import_predictions.py",
        f"file={tmp_path / 'ok.csv'}",
        "model_name=m",
        f"data.path={synthetic_dataset}",
        f"output_dir={project_run}",
    )
    assert result.returncode == 1 and "holds an eval/run.py run; choose another folder" in result.stderr
    result = run_script(
        "eval/import_predictions.py",
        f"file={tmp_path / 'ok.csv'}",
        "model_name=m",
        f"data.path={synthetic_dataset}",
        f"output_dir={tmp_path / 'o'}",
    )
    assert result.returncode == 1 and "no row of" in result.stderr and "matched a clip of split 'test'" in result.stderr
