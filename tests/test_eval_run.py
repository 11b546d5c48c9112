"""The eval harness end to end on the tiny model and synthetic clips: outputs, resume, clear errors."""

import json
import shlex
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from fake_api_servers import FakeOpenAIServer, Scripted
from ghostprobe.files import read_jsonl
from helpers import REPO_ROOT
from small_disk import on_small_disk, small_disk_available


def run_eval(*args, check=True):
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "eval/run.py"), "wandb.mode=disabled", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, synthetic_dataset, tiny_checkpoint):
    out = tmp_path_factory.mktemp("eval") / "run"
    run_eval("model=tiny", f"model.path={tiny_checkpoint}", f"data.path={synthetic_dataset}", f"output_dir={out}")
    return out


def test_tiny_end_to_end_writes_predictions_and_consistent_metrics(finished_run, synthetic_dataset):
    from datasets import load_from_disk

    metrics = json.loads((finished_run / "metrics.json").read_text())
    rows = [r for r in read_jsonl([finished_run / "predictions.jsonl"]) if r["split"] == "test"]
    test = load_from_disk(str(synthetic_dataset))["test"]
    assert sorted(r["sample_id"] for r in rows) == sorted(test["sample_id"])
    assert metrics["data"]["num_samples"] == len(test)
    # the headline accuracy is what the stored scores and the chosen threshold give
    threshold = metrics["threshold"]["value"]
    correct = [(r["p_ghost_probing"] >= threshold) == r["is_ghost_probing"] for r in rows]
    assert metrics["classification"]["model"]["accuracy_nan_as_wrong"] == pytest.approx(np.mean(correct))
    # the model's own answer; the val split is far too small to tune a threshold on, and the run says so
    assert threshold == 0.5 and metrics["threshold"]["source"] == "the model's own answer: yes when P(yes) >= P(no)"
    tuned = metrics["tuned_threshold"]
    assert not tuned["available"] and tuned["refused"][0].startswith("the val split has")
    assert "Warning: no threshold was tuned on the val split has" in (finished_run / "report.md").read_text()
    baselines = metrics["classification"]["baselines"]
    assert baselines["always_no"]["accuracy"] == pytest.approx(1 - np.mean([r["is_ghost_probing"] for r in rows]))
    # a random model on a handful of clips is never told to deploy, and both the report and metrics.json say what
    # the model is
    assert metrics["decision"]["action"] == "inconclusive" and metrics["decision"]["n"] == len(rows)
    assert metrics["model_random_init"] is True
    assert "is the random-init stand-in built by the project" in (finished_run / "report.md").read_text()
    assert metrics["decision"]["model_stage"] == "zero-shot"  # a plain model folder, not a training checkpoint
    # Which prompt layout the model saw: the original Video-LLaMA Chat path unless asked otherwise.
    assert metrics["prompt_format"] == "original"
    assert "(format original)" in (finished_run / "report.md").read_text()
    # synthetic clips come from no public dataset: the all-unknown source columns are left out
    assert set(metrics["classification"]["by_group"]) == {
        "label",
        "actor",
        "occluder",
        "light",
        "weather",
        "label_quality",
    }
    assert set(metrics["classification"]["by_group"]["label_quality"]) == {"gold"}  # no label says weak
    assert all(0.0 <= r["p_ghost_probing"] <= 1.0 and r["latency_s"] > 0 for r in rows)


def test_resume_after_kill_gives_same_metrics_without_duplicates(
    finished_run, tmp_path, synthetic_dataset, tiny_checkpoint
):
    lines = (finished_run / "predictions.jsonl").read_text().splitlines(keepends=True)
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    # What a kill mid-run leaves: the first rows, then half a row being written.
    (resumed / "predictions.jsonl").write_text("".join(lines[:7]) + lines[7][: len(lines[7]) // 2])
    run_eval("model=tiny", f"model.path={tiny_checkpoint}", f"data.path={synthetic_dataset}", f"output_dir={resumed}")
    rows = read_jsonl([resumed / "predictions.jsonl"])
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)) == len(lines)
    first = json.loads((finished_run / "metrics.json").read_text())
    second = json.loads((resumed / "metrics.json").read_text())
    assert second["classification"] == first["classification"]
    assert second["threshold"] == first["threshold"]


def test_rank_files_left_by_a_killed_torchrun_run_are_folded_in(
    finished_run, tmp_path, synthetic_dataset, tiny_checkpoint
):
    lines = (finished_run / "predictions.jsonl").read_text().splitlines(keepends=True)
    out = tmp_path / "killed_torchrun"
    out.mkdir()
    # what two ranks leave when one is killed before the merge: rank files, no predictions.jsonl
    half = len(lines) // 2
    (out / "predictions.rank0.jsonl").write_text("".join(lines[:half]))
    (out / "predictions.rank1.jsonl").write_text("".join(lines[half : half + 3]) + lines[half + 3][:20])
    run_eval("model=tiny", f"model.path={tiny_checkpoint}", f"data.path={synthetic_dataset}", f"output_dir={out}")
    assert sorted(p.name for p in out.glob("predictions*.jsonl")) == ["predictions.jsonl"]
    keys = [r["key"] for r in read_jsonl([out / "predictions.jsonl"])]
    assert len(keys) == len(set(keys)) == len(lines)
    first = json.loads((finished_run / "metrics.json").read_text())
    assert json.loads((out / "metrics.json").read_text())["classification"] == first["classification"]


def test_three_evals_a_b_a_into_one_folder_report_the_last_run_only(
    finished_run, tmp_path, synthetic_dataset, tiny_checkpoint
):
    from ghostprobe.models.video_llama.tiny import build_tiny_checkpoint
    from ghostprobe.runs import load_run

    other = build_tiny_checkpoint(tmp_path / "other_model", seed=1)  # same name, other weights
    shared = tmp_path / "shared"
    for path in (tiny_checkpoint, other, tiny_checkpoint):
        run_eval(
            "model=tiny",
            f"model.path={path}",
            f"data.path={synthetic_dataset}",
            f"output_dir={shared}",
            "metrics.bootstrap_resamples=50",
        )
    metrics, rows = load_run(shared)
    reference, reference_rows = load_run(finished_run)
    assert metrics["run_identity"] == reference["run_identity"]
    by_id = {r["sample_id"]: r["p_ghost_probing"] for r in reference_rows}
    assert {r["sample_id"]: r["p_ghost_probing"] for r in rows} == by_id  # A's rows, not B's
    identities = {r["run_identity"] for r in read_jsonl([shared / "predictions.jsonl"])}
    assert len(identities) == 2  # A's and B's rows both kept; the third run re-used A's answers
    assert len(read_jsonl([shared / "predictions.jsonl"])) == 2 * len(reference_rows) + 2 * sum(
        r["split"] == "val" for r in read_jsonl([finished_run / "predictions.jsonl"])
    )
    report = (shared / "report.md").read_text()
    assert f"{reference['classification']['model']['accuracy_nan_as_wrong']:.3f}" in report


def test_weights_changed_in_place_are_scored_again_not_reused(
    finished_run, tmp_path, synthetic_dataset, tiny_checkpoint
):
    """A folder converted again in place (or a run directory whose best checkpoint moved on) is another model: a
    re-run into the same output_dir must not count the old weights' answers as done."""
    from ghostprobe.models.video_llama import VideoLlamaForConditionalGeneration

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_checkpoint, model_dir)
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)  # the answers of the same weights at another path: not these
    run_eval("model=tiny", f"model.path={model_dir}", f"data.path={synthetic_dataset}", f"output_dir={out}")
    first = json.loads((out / "metrics.json").read_text())
    assert first["model_checkpoint"] == str(model_dir.resolve())
    model = VideoLlamaForConditionalGeneration.from_pretrained(model_dir)
    with torch.no_grad():
        model.llama_proj.weight.mul_(-3.0)
    model.save_pretrained(model_dir)  # same folder, same config: only the weight file changed
    run_eval("model=tiny", f"model.path={model_dir}", f"data.path={synthetic_dataset}", f"output_dir={out}")
    second = json.loads((out / "metrics.json").read_text())
    assert second["run_identity"] != first["run_identity"]
    rows = read_jsonl([out / "predictions.jsonl"])
    scored = {
        r["sample_id"]: r["p_ghost_probing"]
        for r in rows
        if r["run_identity"] == second["run_identity"] and r["split"] == "test"
    }
    before = {
        r["sample_id"]: r["p_ghost_probing"]
        for r in rows
        if r["run_identity"] == first["run_identity"] and r["split"] == "test"
    }
    assert len(scored) == second["data"]["num_samples"] == len(before)
    assert any(abs(scored[k] - before[k]) > 1e-6 for k in scored)  # really scored again, with the new weights


def test_run_identity_ignores_pacing_and_follows_what_changes_an_answer():
    from omegaconf import OmegaConf

    from eval.predictions import run_identity
    from ghostprobe.config import compose
    from ghostprobe.prompts import load_prompt

    def identity(*overrides):
        cfg = compose("eval", ["output_dir=x", "data.path=x", *overrides])
        prompt = load_prompt(OmegaConf.to_container(cfg.prompt, resolve=True))
        return run_identity(OmegaConf.to_container(cfg.model, resolve=True), prompt, ("score",), "data")

    gpt4o = identity("model=gpt4o")
    assert (
        identity(
            "model=gpt4o",
            "model.max_concurrency=16",
            "model.batch_size=4",
            "model.timeout_s=5",
            "model.requests_per_minute=600",
            "model.max_retries=1",
        )
        == gpt4o
    )
    assert identity("model=gpt4o", "model.max_frames=16") != gpt4o
    assert identity("model=gpt4o", "model.image_detail=high") != gpt4o
    qwen = identity("model=qwen2_5_vl_7b")
    assert identity("model=qwen2_5_vl_7b", "model.num_frames=8") != qwen
    assert identity("model=qwen2_5_vl_7b", "model.batch_size=1") == qwen
    assert identity("model=gpt4o", "prompt=en") != gpt4o


@pytest.mark.slow
def test_torchrun_ranks_split_the_clips_and_rank_0_merges(finished_run, tmp_path, synthetic_dataset, tiny_checkpoint):
    import os

    out = tmp_path / "two_ranks"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(REPO_ROOT / "eval/run.py"),
            "wandb.mode=disabled",
            "model=tiny",
            f"model.path={tiny_checkpoint}",
            f"data.path={synthetic_dataset}",
            f"output_dir={out}",
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in out.glob("predictions*.jsonl")) == ["predictions.jsonl"]  # rank files folded in
    rows = read_jsonl([out / "predictions.jsonl"])
    assert len(rows) == len({r["key"] for r in rows}) == len(read_jsonl([finished_run / "predictions.jsonl"]))
    # the same scores as one process (to float noise: the ranks batch other clips together)
    single = {r["key"].split(":", 1)[1]: r["p_ghost_probing"] for r in read_jsonl([finished_run / "predictions.jsonl"])}
    assert {r["key"].split(":", 1)[1]: r["p_ghost_probing"] for r in rows} == pytest.approx(single, abs=1e-5)
    first = json.loads((finished_run / "metrics.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["classification"]["model"]["confusion"] == first["classification"]["model"]["confusion"]
    assert not (out / "run.lock").exists()  # rank 0 held the folder, and let it go


def test_failed_rows_are_asked_again_on_rerun(finished_run, tmp_path, synthetic_dataset, tiny_checkpoint):
    rows = read_jsonl([finished_run / "predictions.jsonl"])
    rows[0] = {**rows[0], "p_ghost_probing": None, "error": "HTTP 503 from the API"}  # an outage hit this clip
    out = tmp_path / "outage"
    out.mkdir()
    (out / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_eval("model=tiny", f"model.path={tiny_checkpoint}", f"data.path={synthetic_dataset}", f"output_dir={out}")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["errors"] == [] and metrics["classification"]["model"]["coverage"] == 1.0
    assert len(read_jsonl([out / "predictions.jsonl"])) == len(rows) + 1  # the re-asked clip appended once


def test_missing_model_path_and_split_are_named(tmp_path, synthetic_dataset):
    result = run_eval(
        "model=tiny",
        f"model.path={tmp_path / 'nowhere'}",
        f"data.path={synthetic_dataset}",
        f"output_dir={tmp_path / 'a'}",
        check=False,
    )
    assert result.returncode != 0 and f"model path {tmp_path / 'nowhere'} does not exist" in result.stderr
    # The tiny model is built, not converted: the message gives the command.
    assert f"python -m ghostprobe.models.video_llama.tiny {tmp_path / 'nowhere'}" in result.stderr
    assert "convert_video_llama" not in result.stderr
    result = run_eval(
        "model=tiny",
        f"data.path={synthetic_dataset}",
        "data.split=holdout",
        f"output_dir={tmp_path / 'b'}",
        check=False,
    )
    assert (
        result.returncode != 0 and "split 'holdout' is not in" in result.stderr and "train, val, test" in result.stderr
    )
    result = run_eval("model=tiny", f"data.path={tmp_path}", f"output_dir={tmp_path / 'c'}", check=False)
    assert result.returncode != 0 and "is not a prepared dataset" in result.stderr


def test_corrupt_frames_are_reported_by_clip_and_field(tmp_path, tiny_checkpoint):
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, List, Value

    from ghostprobe.frames import encode_jpeg
    from ghostprobe.labels import LABEL_NAMES

    good = encode_jpeg(np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8), 90)
    rows = {
        "sample_id": ["ok1", "broken", "ok2"],
        "clip_id": ["ok1", "broken", "ok2"],
        "label": [0, 3, 3],
        "is_ghost_probing": [True, False, False],
        "frames": [
            [{"bytes": b, "path": None} for b in good],
            [{"bytes": b"\xff\xd8 not really a jpeg", "path": None}] * 4,
            [{"bytes": b, "path": None} for b in good],
        ],
        "timestamps_s": [[0.0, 1.0, 2.0, 3.0]] * 3,
    }
    features = Features(
        {
            "sample_id": Value("string"),
            "clip_id": Value("string"),
            "label": ClassLabel(names=list(LABEL_NAMES)),
            "is_ghost_probing": Value("bool"),
            "frames": List(Image()),
            "timestamps_s": List(Value("float32")),
        }
    )
    DatasetDict({"test": Dataset.from_dict(rows, features=features)}).save_to_disk(str(tmp_path / "ds"))
    result = run_eval(
        "model=tiny",
        f"model.path={tiny_checkpoint}",
        f"data.path={tmp_path / 'ds'}",
        f"output_dir={tmp_path / 'out'}",
        "metrics.bootstrap_resamples=50",
        check=False,
    )
    metrics = json.loads((tmp_path / "out/metrics.json").read_text())
    (error,) = metrics["errors"]
    assert error["sample_id"] == "broken" and "clip 'broken' field 'frames': unreadable" in error["error"]
    assert metrics["classification"]["model"]["n_scored"] == 2
    # A local model is held to the same floor as an API: 2 of 3 answered is below 90%, so no decision, exit 1.
    assert result.returncode == 1 and "1 of 3 test clips have no answer" in result.stderr
    assert metrics["decision"]["action"] is None
    assert metrics["decision"]["reason"].startswith("no decision: 1 of 3 clips failed (clip 'broken' field 'frames'")
    # Both limits are one key away.
    run_eval(
        "model=tiny",
        f"model.path={tiny_checkpoint}",
        f"data.path={tmp_path / 'ds'}",
        f"output_dir={tmp_path / 'out'}",
        "metrics.bootstrap_resamples=50",
        "max_failed_fraction=0.5",
        "decision.min_answered_fraction=0.5",
    )
    metrics = json.loads((tmp_path / "out/metrics.json").read_text())
    assert metrics["decision"]["action"] == "inconclusive"  # decided, on 2 clips: nothing it could be sure of


def test_hardware_profile_reaches_local_models_only_with_keys_they_take(tmp_path):
    from eval.run import model_config
    from ghostprobe.config import compose

    qwen_dir, llama_dir = tmp_path / "qwen", tmp_path / "llama"
    qwen_dir.mkdir(), llama_dir.mkdir()
    cfg = compose(
        "eval", ["model=qwen2_5_vl_7b", "hardware=v100x4", f"model.path={qwen_dir}", "output_dir=x", "data.path=x"]
    )
    qwen = model_config(cfg)
    assert qwen["dtype"] == "fp16" and qwen["device_map"] == "sequential" and "sdpa_backends" not in qwen
    assert "video_kwargs" in qwen  # the model's own settings survive the merge
    cfg = compose(
        "eval", ["model=7b_finetuned", "hardware=v100x4", f"model.path={llama_dir}", "output_dir=x", "data.path=x"]
    )
    llama = model_config(cfg)
    assert llama["dtype"] == "fp16" and llama["sdpa_backends"] == ["efficient", "math"]
    api = model_config(compose("eval", ["model=gpt4o", "hardware=v100x4", "output_dir=x", "data.path=x"]))
    assert "dtype" not in api and "device_map" not in api


def test_nan_scores_of_a_local_model_give_no_decision():
    from eval.summarize import summarize
    from ghostprobe.config import compose

    cfg = compose("eval", ["output_dir=x", "data.path=x"])
    metrics_cfg = {"metrics": dict(cfg.metrics, bootstrap_resamples=20, group_by=[]), "decision": dict(cfg.decision)}
    rows = [
        {
            "sample_id": f"c{i}",
            "clip_id": f"c{i}",
            "is_ghost_probing": i % 2 == 0,
            "latency_s": 0.1,
            "error": None,
            "p_ghost_probing": 0.9 if i < 3 else None,
        }
        for i in range(10)
    ]
    decision = summarize(rows, [], [], metrics_cfg, None)["decision"]
    assert decision["action"] is None
    assert decision["reason"].startswith("no decision: 7 of 10 clips failed (no usable answer (NaN score))")


def test_damaged_dataset_is_one_line_naming_the_folder_and_the_fix(tmp_path, synthetic_dataset):
    damaged = tmp_path / "prepared"
    shutil.copytree(synthetic_dataset, damaged)
    (arrow,) = (damaged / "test").glob("*.arrow")
    arrow.write_bytes(b"")  # what a killed write or a full disk leaves
    result = run_eval("model=tiny", f"data.path={damaged}", f"output_dir={tmp_path / 'out'}", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    labels = json.loads((synthetic_dataset / "prep_report.json").read_text())["labels"]
    assert line.startswith(f"eval: data.path={damaged} is damaged and cannot be read: {damaged / 'test'}: ")
    assert line.endswith(
        f"Prepare it again: python data_prep/main.py labels={labels} out_dir={damaged} "
        "(with the options it was made with)"
    )


def test_fine_tuned_checkpoint_gets_the_fine_tune_next_steps(tmp_path, synthetic_dataset, tiny_checkpoint):
    from ghostprobe.models.video_llama.run_dir import CHECKPOINT_INFO, COMPLETE_MARKER

    # A run directory as the trainer leaves it, with a full-weights checkpoint (what a full fine-tune saves).
    checkpoint = tmp_path / "run" / "checkpoint-4"
    shutil.copytree(tiny_checkpoint, checkpoint)
    (checkpoint / CHECKPOINT_INFO).write_text(
        json.dumps({"format": "full", "step": 4, "prompt": "en", "prompt_format": "localized_frames"})
    )
    (checkpoint / COMPLETE_MARKER).write_text("")
    out = tmp_path / "out"
    result = run_eval(
        "model=tiny",
        f"model.path={tmp_path / 'run'}",
        f"data.path={synthetic_dataset}",
        f"output_dir={out}",
        "metrics.bootstrap_resamples=50",
    )
    # Scored with another prompt and prompt layout than it was trained with: both are said.
    assert "was fine-tuned with prompt=en but is evaluated with prompt=zh; pass prompt=en" in result.stderr
    assert (
        "was fine-tuned with prompt_format=localized_frames but is evaluated with prompt_format=original; "
        "leave model.prompt_format=null"
    ) in result.stderr
    decision = json.loads((out / "metrics.json").read_text())["decision"]
    assert decision["model_stage"] == "fine-tuned"
    # a handful of clips: inconclusive, for a fine-tune as for a zero-shot model
    assert decision["action"] == "inconclusive" and decision["next_steps"].startswith("label more clips")
    report = (out / "report.md").read_text()
    assert "zero-shot" not in decision["reason"] and "zero-shot" not in report
    assert f"Decision: {decision['action'].upper()}: {decision['next_steps']}" in report


# ---------------------------------------------------------------------------------------------------------------
# API models in an outage (the real clients against a closed port or a local fake server)


def closed_port_url() -> str:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/v1"


def test_api_outage_ends_without_a_decision_and_with_exit_code_1(tmp_path, synthetic_dataset, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-outage")
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "eval/run.py"),
            "model=gpt4o",
            f"model.base_url={closed_port_url()}",
            "model.max_retries=0",
            "model.requests_per_minute=null",
            f"data.path={synthetic_dataset}",
            f"output_dir={out}",
            "report.thumbnails=false",
            "wandb.mode=offline",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    n = json.loads((synthetic_dataset / "prep_report.json").read_text())["splits"]["test"]["samples"]
    assert result.returncode == 1, result.stderr[-3000:]
    assert f"eval: {n} of {n} test clips have no answer, more than max_failed_fraction=0.05" in result.stderr
    expected = f"no decision: {n} of {n} clips failed (APIConnectionError: cannot reach"
    assert f"  {expected}" in result.stdout
    decision = json.loads((out / "metrics.json").read_text())["decision"]
    assert decision["action"] is None and decision["reason"].startswith(expected)
    assert "Connection refused); the rule needs at least 90% of the clips answered" in decision["reason"]
    report = (out / "report.md").read_text()
    assert "**NO DECISION: " in report and expected in report
    assert not any(f"Decision: {action}" in report for action in ("DEPLOY", "OPTIMISE", "FINE-TUNE"))
    (record,) = (out / "wandb").glob("offline-run-*/run-*.wandb")  # offline runs keep the summary there
    assert b'"no decision"' in record.read_bytes()


def test_api_outage_stops_after_failed_clips_in_a_row_with_one_line(tmp_path, synthetic_dataset, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-outage")
    out = tmp_path / "out"
    result = run_eval(
        "model=gpt4o",
        f"model.base_url={closed_port_url()}",
        "model.max_retries=0",
        "model.requests_per_minute=null",
        "model.abort_after_failed_clips=2",
        f"data.path={synthetic_dataset}",
        f"output_dir={out}",
        check=False,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "eval: stopped: model 'gpt4o': 2 clips in a row failed" in result.stderr
    assert f"kept in {out / 'predictions.jsonl'}; run the same command again to resume" in result.stderr
    assert not (out / "metrics.json").exists()


def test_api_model_keeps_max_concurrency_clips_in_flight(tmp_path, synthetic_dataset, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-concurrency")
    delay_s = 1.0  # each request is held this long, so requests sent together overlap on the server
    with FakeOpenAIServer() as server:
        server.default = Scripted(text="Yes", top_logprobs=[[("Yes", -0.2), ("No", -1.8)]], delay_s=delay_s)
        run_eval(
            "model=gpt4o",
            f"model.base_url={server.base_url}",
            "model.requests_per_minute=null",
            f"data.path={synthetic_dataset}",
            "data.val_split=null",
            f"output_dir={tmp_path / 'out'}",
            "metrics.bootstrap_resamples=50",
        )
    arrivals = sorted(r.received_s for r in server.requests)
    in_flight = max(sum(1 for t in arrivals if start - delay_s < t <= start) for start in arrivals)
    n = json.loads((synthetic_dataset / "prep_report.json").read_text())["splits"]["test"]["samples"]
    assert len(arrivals) == n and in_flight == min(4, n)  # conf/model/gpt4o.yaml: max_concurrency 4


def test_a_second_eval_into_a_busy_folder_is_refused_by_name(tmp_path, synthetic_dataset, tiny_checkpoint):
    from ghostprobe.run_lock import RunLock

    out = tmp_path / "busy"
    out.mkdir()
    with RunLock(out, "eval"):  # another eval holds the folder
        result = run_eval(
            "model=tiny",
            f"model.path={tiny_checkpoint}",
            f"data.path={synthetic_dataset}",
            f"output_dir={out}",
            check=False,
        )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"eval: {out} is in use by another eval run (pid " in result.stderr
    assert not (out / "predictions.jsonl").exists()


CHECK_WHAT_IS_LEFT = """
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
if (out / "metrics.json").exists():
    json.loads((out / "metrics.json").read_text())  # whole, never half-written
for line in (out / "predictions.jsonl").read_text().splitlines():
    json.loads(line)
print("left whole")
"""


@pytest.mark.skipif(not small_disk_available(), reason="needs unprivileged user namespaces (unshare) for a tmpfs")
def test_a_full_disk_is_one_line_and_leaves_every_file_whole(tmp_path, synthetic_dataset, tiny_checkpoint):
    out = tmp_path / "small"
    out.mkdir()
    script = (
        f"{shlex.quote(sys.executable)} {shlex.quote(str(REPO_ROOT / 'eval/run.py'))} wandb.mode=disabled "
        f"model=tiny model.path={tiny_checkpoint} data.path={synthetic_dataset} output_dir={out} "
        f"metrics.bootstrap_resamples=50; echo exit=$?; {shlex.quote(sys.executable)} -c "
        f"{shlex.quote(CHECK_WHAT_IS_LEFT)} {out}"
    )
    done = subprocess.run(on_small_disk(out, "48k", ["sh", "-c", script]), capture_output=True, text=True, timeout=600)
    assert "exit=1" in done.stdout and "left whole" in done.stdout, done.stdout + done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"eval: disk full: no space left to write in {out} (")


def test_more_frames_than_the_model_takes_is_said_once_at_start_up(tmp_path, tiny_checkpoint):
    from datasets import Array4D, Dataset, DatasetDict, Features, List, Value

    frames = np.random.default_rng(0).integers(0, 255, (3, 12, 28, 28, 3), dtype=np.uint8)  # 12 frames per clip
    features = Features(
        {
            "sample_id": Value("string"),
            "clip_id": Value("string"),
            "label": Value("int64"),
            "is_ghost_probing": Value("bool"),
            "frames": Array4D(shape=(None, 28, 28, 3), dtype="uint8"),
            "timestamps_s": List(Value("float64")),
        }
    )
    rows = {
        "sample_id": ["a", "b", "c"],
        "clip_id": ["a", "b", "c"],
        "label": [0, 3, 3],
        "is_ghost_probing": [True, False, False],
        "frames": list(frames),
        "timestamps_s": [[k / 4 for k in range(12)]] * 3,
    }
    DatasetDict({"test": Dataset.from_dict(rows, features=features)}).save_to_disk(str(tmp_path / "ds"))
    result = run_eval(
        "model=tiny",
        f"model.path={tiny_checkpoint}",
        f"data.path={tmp_path / 'ds'}",
        f"output_dir={tmp_path / 'out'}",
        check=False,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        f"eval: split 'test' of {tmp_path / 'ds'} has clips of 12 frames, but model tiny_video_llama takes at most 8"
    ) in result.stderr and "sampling.num_frames=8" in result.stderr
    assert not (tmp_path / "out" / "predictions.jsonl").exists() or not (tmp_path / "out/predictions.jsonl").read_text()


def test_the_decision_is_taken_on_gold_labels_when_there_are_any():
    from omegaconf import OmegaConf

    from eval.summarize import summarize
    from ghostprobe.config import compose

    cfg = OmegaConf.to_container(
        compose("eval", ["output_dir=x", "data.path=x", "metrics.bootstrap_resamples=20"]), resolve=True
    )
    rng = np.random.default_rng(0)
    rows = []
    for i in range(120):
        gold = i < 40
        positive = i % 2 == 0
        right = rng.random() < (0.95 if gold else 0.5)  # the model agrees with gold labels, not with weak ones
        p = 0.9 if positive == right else 0.1
        rows.append(
            {
                "sample_id": f"c{i}",
                "clip_id": f"c{i}",
                "is_ghost_probing": positive,
                "latency_s": 0.1,
                "error": None,
                "p_ghost_probing": p,
                "label_quality": "gold" if gold else "weak",
                "source_dataset": None if gold else "dada2000",
            }
        )
    summary = summarize(rows, [], [], cfg, None)
    decision = summary["decision"]
    gold_right = sum((r["p_ghost_probing"] >= 0.5) == r["is_ghost_probing"] for r in rows[:40])
    assert decision["n_decided_on"] == decision["n"] == 40 and decision["n_correct"] == gold_right
    assert decision["label_quality"] == "gold"
    assert decision["reason"].startswith("Decided on the 40 gold-labelled clips; the 80 weak labels are reported apart")
    by_quality = summary["classification"]["by_group"]["label_quality"]
    assert by_quality["gold"]["n"] == 40 and by_quality["weak"]["n"] == 80
    weak_only = summarize(rows[40:], [], [], cfg, None)["decision"]
    assert weak_only["label_quality"] == "weak" and "rests on weak labels" in weak_only["reason"]
