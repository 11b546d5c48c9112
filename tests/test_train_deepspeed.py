"""The trainer end to end: `deepspeed --num_gpus 2 train/main.py +exp=tiny_smoke` on two CPU ranks (gloo, ZeRO-3).

Three launches share one small synthetic dataset and the tiny random model:
- LoRA (the tiny_smoke default), uninterrupted, W&B offline;
- full fine-tuning, told to stop after 8 of 12 steps;
- a resume of the LoRA run from its step-6 checkpoint, next to a newer checkpoint killed mid-write.
Each checks what a user would: the loss falls, checkpoints reload in this (fresh) process with the validation
scores measured during training, resuming gives the uninterrupted run's numbers, export merges LoRA.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ghostprobe.config import prep_settings
from ghostprobe.models.base import build_model
from ghostprobe.models.video_llama import VideoLlamaForConditionalGeneration
from ghostprobe.models.video_llama.run_dir import COMPLETE_MARKER, TRAINABLES_FILE, complete_checkpoints
from ghostprobe.prompts import load_prompt
from ghostprobe.synth import generate
from small_disk import on_small_disk, small_disk_available

REPO = Path(__file__).resolve().parents[1]
DEEPSPEED = Path(sys.executable).parent / "deepspeed"
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:  # other test sessions may run launchers on this machine: never the default 29500
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_trainer(
    run_dir: Path, *overrides: str, exp: str = "tiny_smoke", timeout: int = 600, wrap=lambda cmd: cmd
) -> subprocess.CompletedProcess:
    """Run the trainer on 2 CPU ranks (the command passed through `wrap`), keeping its output in RUN.log."""
    cmd = wrap(
        [
            str(DEEPSPEED),
            "--num_gpus",
            "2",
            "--master_port",
            str(_free_port()),
            "train/main.py",
            f"+exp={exp}",
            f"output_dir={run_dir}",
            "progress_bar=false",
            *overrides,
        ]
    )
    env = {**os.environ, "WANDB_SILENT": "true", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    (run_dir.parent / f"{run_dir.name}.log").write_text(done.stdout + done.stderr)
    return done


def launch(run_dir: Path, *overrides: str, exp: str = "tiny_smoke", timeout: int = 600) -> Path:
    """Run the trainer on 2 CPU ranks; fail with the log tail when it does not exit 0."""
    done = run_trainer(run_dir, *overrides, exp=exp, timeout=timeout)
    assert done.returncode == 0, (
        f"{' '.join(done.args)} exited {done.returncode}:\n{(done.stdout + done.stderr)[-6000:]}"
    )
    return run_dir


def refusal(done: subprocess.CompletedProcess, start: str) -> str:
    """The one line starting with `start` by which the trainer refused to start (exit 1, once, no traceback)."""
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-6000:]
    lines = [line for line in output.splitlines() if line.startswith(start)]
    assert len(lines) == 1 and "Traceback" not in output, output[-6000:]
    return lines[0]


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def train_losses(run_dir: Path) -> dict[int, float]:
    return {m["step"]: m["loss"] for m in metrics(run_dir) if "loss" in m}


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    """(base model folder, prepared dataset): the tiny random checkpoint and 40 synthetic clips stored at 28 px."""
    from data_prep.prepare import prepare_dataset
    from ghostprobe.models.video_llama.tiny import build_tiny_checkpoint

    root = tmp_path_factory.mktemp("train")
    base = build_tiny_checkpoint(root / "tiny_base")
    generate(root / "clips", num_clips=40, seed=0, width=160, height=96, fps=2, duration_s=4.0)
    report = prepare_dataset(root / "clips" / "labels.json", root / "prepared", prep_settings(frame_size=28))
    assert report["num_prepared"] == 40
    return base, root / "prepared"


def _common(tiny_setup) -> list[str]:
    base, data = tiny_setup
    return [f"model.path={base}", f"data.path={data}"]


@pytest.fixture(scope="module")
def lora_run(tiny_setup, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("lora") / "run"
    return launch(run_dir, *_common(tiny_setup), "logger=wandb", "logger.mode=offline")


@pytest.fixture(scope="module")
def full_run(tiny_setup, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("full") / "run"
    return launch(run_dir, *_common(tiny_setup), "logger=none", "train.llm=full", "train.stop_at_step=8")


def _score_val(model_path, data_path: Path, checkpoint: Path) -> dict[str, float]:
    """P(yes) per val sample from the eval harness's model (build_model) in this process."""
    import datasets

    from ghostprobe.frames import frames_from_row
    from ghostprobe.models.base import ClipInput

    model = build_model({"kind": "video_llama", "path": str(model_path), "batch_size": 4})
    rows = datasets.load_from_disk(str(data_path))["val"].with_format("numpy")
    clips = [
        ClipInput(str(r["sample_id"]), frames_from_row(r["frames"]), tuple(float(t) for t in r["timestamps_s"]))
        for r in rows
    ]
    prompt_name = json.loads((checkpoint / "ghostprobe_checkpoint.json").read_text())["prompt"]
    from omegaconf import OmegaConf

    prompt = load_prompt(OmegaConf.load(REPO / "conf" / "prompt" / f"{prompt_name}.yaml"))
    return {out.clip_id: out.p_ghost_probing for out in model.score(clips, prompt)}


def _assert_same_scores(scored: dict[str, float], checkpoint: Path) -> None:
    recorded = json.loads((checkpoint / "val_scores.json").read_text())["scores"]
    assert set(scored) == set(recorded)
    got = np.array([scored[k] for k in sorted(recorded)])
    want = np.array([recorded[k] for k in sorted(recorded)])
    assert np.ptp(want) > 1e-4, "validation scores do not differ between clips: the check could not fail"
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_lora_zero3_loss_falls_and_logs(lora_run):
    losses = train_losses(lora_run)
    assert sorted(losses) == list(range(1, 13))
    first, last = np.mean([losses[s] for s in (1, 2, 3)]), np.mean([losses[s] for s in (10, 11, 12)])
    assert last < 0.9 * first, losses
    records = metrics(lora_run)
    step_logs = [m for m in records if "samples_per_s" in m]
    for key in ("learning_rate", "grad_norm", "samples_per_s", "tokens_per_s", "mfu", "peak_memory_gib"):
        assert all(m[key] is not None and m[key] >= 0 for m in step_logs), key
    evals = [m for m in records if "eval_loss" in m]
    assert [m["step"] for m in evals] == [6, 12]
    assert all(0 <= m["eval_accuracy"] <= 1 and 0 <= m["eval_fpr"] <= 1 for m in evals)
    summary = json.loads((lora_run / "summary.json").read_text())
    assert summary["global_step"] == 12 and 0 <= summary["test"]["test_accuracy"] <= 1
    # W&B: one offline run (rank 0 only) holding the resolved config, the metrics and both checkpoints as
    # reference artifacts (read from the run's record file: offline runs keep everything there).
    records = list((lora_run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(records) == 1
    content = records[0].read_bytes()
    for expected in ("tiny_smoke", "train/mfu", "val/auroc", (lora_run / "checkpoint-12").resolve().as_uri()):
        assert expected.encode() in content, expected


def test_lora_checkpoint_holds_adapter_and_trainables_and_reloads(lora_run, tiny_setup):
    from safetensors.torch import load_file

    checkpoints = complete_checkpoints(lora_run)
    assert [c.name for c in checkpoints] == ["checkpoint-6", "checkpoint-12"]
    last = checkpoints[-1]
    adapter = load_file(last / "adapter_model.safetensors")
    trainables = load_file(last / TRAINABLES_FILE)
    assert adapter and all(t.numel() > 0 for t in adapter.values())  # not ZeRO-3 placeholders
    assert {k.split(".")[0] for k in trainables} == {
        "video_qformer",
        "video_query_tokens",
        "video_frame_position_embedding",
        "llama_proj",
    }
    base = VideoLlamaForConditionalGeneration.from_pretrained(tiny_setup[0])
    assert not torch.equal(trainables["llama_proj.weight"], base.llama_proj.weight)  # trained, and saved so
    # The eval harness loads the run directory (-> its best checkpoint) and scores val as training did.
    best = lora_run / json.loads((lora_run / "summary.json").read_text())["best_checkpoint"]
    _assert_same_scores(_score_val(lora_run, tiny_setup[1], best), best)
    # An eval run of the run directory is a run of that checkpoint: its identity names the folder and its files.
    from ghostprobe.models.base import answer_settings

    weights = answer_settings({"kind": "video_llama", "name": "tiny", "path": str(lora_run)})["weights"]
    assert weights["dir"] == str(best.resolve()) and any(
        name.startswith("adapter_model") for name, *_ in weights["files"]
    )


def test_full_zero3_stops_early_and_saves_consolidated_weights(full_run, tiny_setup):
    losses = train_losses(full_run)
    assert sorted(losses) == list(range(1, 9))  # train.stop_at_step=8 of max_steps=12
    # The stop writes a checkpoint (checkpoint.every_steps=6 alone would lose steps 7 and 8) to resume from.
    assert [c.name for c in complete_checkpoints(full_run)] == ["checkpoint-6", "checkpoint-8"]
    assert json.loads((full_run / "summary.json").read_text())["last_checkpoint"] == "checkpoint-8"
    assert json.loads((full_run / "checkpoint-8" / "trainer_state.json").read_text())["max_steps"] == 12
    assert np.mean([losses[7], losses[8]]) < 0.9 * np.mean([losses[1], losses[2]]), losses
    checkpoint = full_run / "checkpoint-6"
    assert (checkpoint / COMPLETE_MARKER).is_file() and not (checkpoint / "adapter_config.json").exists()
    model = VideoLlamaForConditionalGeneration.from_pretrained(checkpoint)  # plain from_pretrained
    base = VideoLlamaForConditionalGeneration.from_pretrained(tiny_setup[0])
    q_proj = "language_model.model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(model.state_dict()[q_proj], base.state_dict()[q_proj])  # the LLM itself was trained
    assert torch.equal(
        model.visual_encoder.embeddings.patch_embedding.weight, base.visual_encoder.embeddings.patch_embedding.weight
    )  # the ViT stayed frozen
    _assert_same_scores(_score_val(checkpoint, tiny_setup[1], checkpoint), checkpoint)


def test_resume_skips_checkpoint_killed_mid_write_and_equals_uninterrupted_run(lora_run, tiny_setup, tmp_path):
    """A run stopped after step 6 (its state is the uninterrupted run's checkpoint-6, copied) that then died while
    writing checkpoint-9 (no marker, truncated weights, metrics logged up to step 9) resumes with resume=auto from
    6 and finishes like the uninterrupted run: same losses at steps 7-12, same validation scores, each step's
    metrics once."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(lora_run / "config.yaml", run_dir)
    shutil.copytree(lora_run / "checkpoint-6", run_dir / "checkpoint-6")
    killed = run_dir / "checkpoint-9"
    shutil.copytree(lora_run / "checkpoint-6", killed)
    (killed / COMPLETE_MARKER).unlink()
    (killed / "adapter_model.safetensors").write_bytes(b"\0" * 100)
    logged = [{**m, "killed_run": True} for m in metrics(lora_run) if m["step"] <= 9]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in logged))
    # Settings resume_may_change declares safe may differ (the stopped run had logger=wandb and keep_last=2).
    launch(run_dir, *_common(tiny_setup), "logger=none", "resume=auto", "checkpoint.keep_last=4")

    rows = metrics(run_dir)
    assert [m["step"] for m in rows if "loss" in m] == list(range(1, 13))  # no step twice
    assert {m["step"] for m in rows if m.get("killed_run")} == set(range(1, 7))  # the stopped run's rows up to 6
    assert not (run_dir / "run.lock").exists()  # released at the end
    resumed = {m["step"]: m["loss"] for m in rows if "loss" in m and not m.get("killed_run")}
    uninterrupted = train_losses(lora_run)
    assert sorted(resumed) == list(range(7, 13))  # started after step 6, not 9 and not 0
    np.testing.assert_allclose(
        [resumed[s] for s in range(7, 13)], [uninterrupted[s] for s in range(7, 13)], rtol=1e-6
    )  # bitwise equal on CPU in practice
    assert [c.name for c in complete_checkpoints(run_dir)] == ["checkpoint-6", "checkpoint-12"]
    ours = json.loads((run_dir / "checkpoint-12" / "val_scores.json").read_text())["scores"]
    theirs = json.loads((lora_run / "checkpoint-12" / "val_scores.json").read_text())["scores"]
    np.testing.assert_allclose([ours[k] for k in sorted(theirs)], [theirs[k] for k in sorted(theirs)], atol=1e-6)


def test_export_merges_lora_into_a_plain_model(lora_run, tiny_setup, tmp_path):
    out = tmp_path / "merged"
    done = subprocess.run(
        [sys.executable, "scripts/export_model.py", f"run_dir={lora_run}", f"out={out}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "config.json").is_file() and not (out / "adapter_config.json").exists()
    merged = VideoLlamaForConditionalGeneration.from_pretrained(out)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    best = lora_run / json.loads((lora_run / "summary.json").read_text())["best_checkpoint"]
    _assert_same_scores(_score_val(out, tiny_setup[1], best), best)


# ---------------------------------------------------------------------------------------------------------------
# What the trainer refuses or warns about, and what a full disk looks like (issue 17)


def _copy_run(lora_run: Path, run_dir: Path, *checkpoints: str) -> Path:
    """A run directory holding lora_run's config.yaml, metrics and the named checkpoints."""
    run_dir.mkdir()
    for name in ("config.yaml", "metrics.jsonl"):
        shutil.copy(lora_run / name, run_dir)
    for name in checkpoints:
        shutil.copytree(lora_run / name, run_dir / name)
    return run_dir


def test_a_lora_checkpoint_that_lost_its_trained_tensors_is_refused_by_eval_export_and_resume(
    lora_run, tiny_setup, tmp_path
):
    """COMPLETE present, trainables.safetensors gone: eval and export would give the base model's video modules
    under the fine-tune's name, resume would continue from them. Each refuses, naming the file."""
    run_dir = _copy_run(lora_run, tmp_path / "run", "checkpoint-6", "checkpoint-12")
    damaged = run_dir / "checkpoint-12"
    (damaged / TRAINABLES_FILE).unlink()
    problem = f"{damaged} is incomplete and cannot be loaded: {TRAINABLES_FILE} is missing ("
    with pytest.raises(FileNotFoundError) as refused:  # eval's model loading (IncompleteCheckpoint)
        build_model({"kind": "video_llama", "path": str(damaged), "batch_size": 4})
    assert str(refused.value).startswith(problem)

    out = tmp_path / "merged"
    done = subprocess.run(
        [sys.executable, "scripts/export_model.py", f"run_dir={damaged}", f"out={out}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"export_model: {problem}")
    assert not out.exists()

    done = run_trainer(run_dir, *_common(tiny_setup), "logger=wandb", "logger.mode=offline", "resume=auto")
    line = refusal(done, "train: resume=auto: ")
    assert f"{damaged} is incomplete and cannot be resumed from: {TRAINABLES_FILE} is missing (" in line
    assert line.endswith(
        f"or resume={run_dir / 'checkpoint-6'} to continue from the one before (the newer checkpoints are then deleted)"
    )
    assert (damaged / COMPLETE_MARKER).is_file()  # refused, not deleted


def test_resume_with_settings_that_change_the_run_is_refused_naming_them(lora_run, tiny_setup, tmp_path):
    """The issue's command: train.lr=0.5 prompt=zh train.global_batch_size=16 on resume=auto. Safe changes
    (logger, keep_last) are allowed by test_resume_skips_checkpoint_killed_mid_write_and_equals_uninterrupted_run."""
    run_dir = _copy_run(lora_run, tmp_path / "run", "checkpoint-6")
    config = (run_dir / "config.yaml").read_text()
    done = run_trainer(
        run_dir,
        *_common(tiny_setup),
        "logger=wandb",
        "logger.mode=offline",
        "resume=auto",
        "train.lr=0.5",
        "prompt=zh",
        "train.global_batch_size=16",
    )
    line = refusal(done, "train: cannot resume ")
    for change in ("train.lr (0.001 -> 0.5)", "train.global_batch_size (8 -> 16)", "prompt.name ('en' -> 'zh')"):
        assert change in line
    assert "resume (" not in line and "logger" not in line
    assert line.endswith(
        "Resume without these overrides, or train with them as a new run (another output_dir, no "
        "resume=). What a resume may change is listed in resume_may_change (conf/train.yaml)"
    )
    assert (run_dir / "config.yaml").read_text() == config  # still says what the run was trained with
    assert metrics(run_dir) == metrics(lora_run)  # nothing trained, nothing dropped


def test_test_at_end_without_a_test_split_stops_at_start(tiny_setup, tmp_path):
    run_dir = tmp_path / "run"
    done = run_trainer(run_dir, *_common(tiny_setup), "logger=none", "eval.test_at_end=true", "data.test_split=holdout")
    line = refusal(done, "train: ")
    assert line == (
        f"train: eval.test_at_end=true needs a test split, but {tiny_setup[1]} has no split 'holdout' "
        "(it has train, val, test): set data.test_split to one of them or eval.test_at_end=false"
    )
    assert sorted(p.name for p in run_dir.iterdir()) == []  # before any step, config or lock was written


def test_a_one_class_train_split_is_warned_about_at_start_and_in_the_summary(tiny_setup, tmp_path):
    import datasets

    one_class = tmp_path / "no_positives"
    splits = datasets.load_from_disk(str(tiny_setup[1]))
    splits["train"] = splits["train"].filter(lambda row: not row["is_ghost_probing"])
    splits.save_to_disk(str(one_class))
    run_dir = launch(
        tmp_path / "run",
        f"model.path={tiny_setup[0]}",
        f"data.path={one_class}",
        "logger=none",
        "train.max_steps=2",
        "eval.every_steps=0",
        "checkpoint.every_steps=0",
        "eval.test_at_end=false",
    )
    warning = (
        f"the train split of {one_class} holds only non-ghost-probing clips ({len(splits['train'])}): the "
        "model can only learn to answer 'No' to every clip; add clips of the other class to the labels"
    )
    log = (tmp_path / "run.log").read_text()
    assert f"train: WARNING: {warning}" in log
    assert log.index(warning) < log.index("'loss'")  # at start-up, before the first step
    assert json.loads((run_dir / "summary.json").read_text())["warnings"] == [warning]


@pytest.mark.skipif(not small_disk_available(), reason="needs unprivileged user namespaces (unshare) for a tmpfs")
def test_a_full_disk_while_checkpointing_ends_with_one_line(tiny_setup, tmp_path):
    """output_dir on a 448 KiB tmpfs: the first checkpoint's model files fit, DeepSpeed's optimizer shards do not
    (torch.save's `inline_container.cc: unexpected pos`)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    run_dir = disk / "run"
    done = run_trainer(
        run_dir,
        *_common(tiny_setup),
        "logger=none",
        "train.max_steps=2",
        "checkpoint.every_steps=1",
        "eval.every_steps=0",
        "eval.test_at_end=false",
        wrap=lambda cmd: on_small_disk(disk, "448k", cmd),
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-6000:]
    # Each rank that hit it says the same line. Ranks and the launcher share the pipe, so another process's output
    # can land on the same line: the message is found where it stands, not only at a line's start.
    lines = set(re.findall(r"train: disk full: .*?then continue with resume=auto", output))
    assert len(lines) == 1, output[-6000:]
    (line,) = lines
    assert line.startswith(f"train: disk full: no space left to write in {run_dir} (")
    assert line.endswith(" free of 448.0 KiB); free space there (or move output_dir), then continue with resume=auto")
    assert "inline_container" not in output and "No space left on device" not in output, output[-6000:]
