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
from ghostprobe.models.video_llama.finetuned import COMPLETE_MARKER, TRAINABLES_FILE, complete_checkpoints
from ghostprobe.prompts import load_prompt
from ghostprobe.synth import generate

REPO = Path(__file__).resolve().parents[1]
DEEPSPEED = Path(sys.executable).parent / "deepspeed"
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:  # other test sessions may run launchers on this machine: never the default 29500
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(run_dir: Path, *overrides: str, exp: str = "tiny_smoke", timeout: int = 600) -> Path:
    """Run the trainer on 2 CPU ranks; fail with the log tail when it does not exit 0."""
    cmd = [str(DEEPSPEED), "--num_gpus", "2", "--master_port", str(_free_port()), "train/main.py", f"+exp={exp}",
           f"output_dir={run_dir}", "progress_bar=false", *overrides]
    env = {**os.environ, "WANDB_SILENT": "true", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    (run_dir.parent / f"{run_dir.name}.log").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, f"{' '.join(cmd)} exited {done.returncode}:\n{(done.stdout + done.stderr)[-6000:]}"
    return run_dir


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
    clips = [ClipInput(str(r["sample_id"]), frames_from_row(r["frames"]), tuple(float(t) for t in r["timestamps_s"]))
             for r in rows]
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
    assert {k.split(".")[0] for k in trainables} == {"video_qformer", "video_query_tokens",
                                                      "video_frame_position_embedding", "llama_proj"}
    base = VideoLlamaForConditionalGeneration.from_pretrained(tiny_setup[0])
    assert not torch.equal(trainables["llama_proj.weight"], base.llama_proj.weight)  # trained, and saved so
    # The eval harness loads the run directory (-> its best checkpoint) and scores val as training did.
    best = lora_run / json.loads((lora_run / "summary.json").read_text())["best_checkpoint"]
    _assert_same_scores(_score_val(lora_run, tiny_setup[1], best), best)


def test_full_zero3_stops_early_and_saves_consolidated_weights(full_run, tiny_setup):
    losses = train_losses(full_run)
    assert sorted(losses) == list(range(1, 9))  # train.stop_at_step=8 of max_steps=12
    assert np.mean([losses[7], losses[8]]) < 0.9 * np.mean([losses[1], losses[2]]), losses
    checkpoint = full_run / "checkpoint-6"
    assert (checkpoint / COMPLETE_MARKER).is_file() and not (checkpoint / "adapter_config.json").exists()
    model = VideoLlamaForConditionalGeneration.from_pretrained(checkpoint)  # plain from_pretrained
    base = VideoLlamaForConditionalGeneration.from_pretrained(tiny_setup[0])
    q_proj = "language_model.model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(model.state_dict()[q_proj], base.state_dict()[q_proj])  # the LLM itself was trained
    assert torch.equal(model.visual_encoder.embeddings.patch_embedding.weight,
                       base.visual_encoder.embeddings.patch_embedding.weight)  # the ViT stayed frozen
    _assert_same_scores(_score_val(checkpoint, tiny_setup[1], checkpoint), checkpoint)


def test_resume_skips_checkpoint_killed_mid_write_and_equals_uninterrupted_run(lora_run, tiny_setup, tmp_path):
    """A run stopped after step 6 (its state is the uninterrupted run's checkpoint-6, copied) that then died while
    writing checkpoint-9 (no marker, truncated weights, metrics logged up to step 9) resumes with resume=auto from
    6 and finishes like the uninterrupted run: same losses at steps 7-12, same validation scores, each step's
    metrics once."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copytree(lora_run / "checkpoint-6", run_dir / "checkpoint-6")
    killed = run_dir / "checkpoint-9"
    shutil.copytree(lora_run / "checkpoint-6", killed)
    (killed / COMPLETE_MARKER).unlink()
    (killed / "adapter_model.safetensors").write_bytes(b"\0" * 100)
    logged = [{**m, "killed_run": True} for m in metrics(lora_run) if m["step"] <= 9]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in logged))
    launch(run_dir, *_common(tiny_setup), "logger=none", "resume=auto")

    rows = metrics(run_dir)
    assert [m["step"] for m in rows if "loss" in m] == list(range(1, 13))  # no step twice
    assert {m["step"] for m in rows if m.get("killed_run")} == set(range(1, 7))  # the stopped run's rows up to 6
    assert not (run_dir / "run.lock").exists()  # released at the end
    resumed = {m["step"]: m["loss"] for m in rows if "loss" in m and not m.get("killed_run")}
    uninterrupted = train_losses(lora_run)
    assert sorted(resumed) == list(range(7, 13))  # started after step 6, not 9 and not 0
    np.testing.assert_allclose([resumed[s] for s in range(7, 13)], [uninterrupted[s] for s in range(7, 13)],
                               rtol=1e-6)  # bitwise equal on CPU in practice
    assert [c.name for c in complete_checkpoints(run_dir)] == ["checkpoint-6", "checkpoint-12"]
    ours = json.loads((run_dir / "checkpoint-12" / "val_scores.json").read_text())["scores"]
    theirs = json.loads((lora_run / "checkpoint-12" / "val_scores.json").read_text())["scores"]
    np.testing.assert_allclose([ours[k] for k in sorted(theirs)], [theirs[k] for k in sorted(theirs)], atol=1e-6)


def test_export_merges_lora_into_a_plain_model(lora_run, tiny_setup, tmp_path):
    out = tmp_path / "merged"
    done = subprocess.run([sys.executable, "scripts/export_model.py", f"run_dir={lora_run}", f"out={out}"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "config.json").is_file() and not (out / "adapter_config.json").exists()
    merged = VideoLlamaForConditionalGeneration.from_pretrained(out)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    best = lora_run / json.loads((lora_run / "summary.json").read_text())["best_checkpoint"]
    _assert_same_scores(_score_val(out, tiny_setup[1], best), best)
