"""What several test files share, made offline: label files, eval run directories with their frames dataset and tiny
Video-LLaMA pieces (model, inputs). Fixtures stay in conftest.py. Fake ORIGINAL checkpoints (the original key names
at any preset's shapes) live in the library, ghostprobe/models/video_llama/fake_originals.py: the benchmarks use
them too.
"""

import json
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from ghostprobe import metrics as M
from ghostprobe.models.video_llama import VideoLlamaConfig, VideoLlamaForConditionalGeneration, video_llama_config

# The tokenizers live in the library (the tiny checkpoint uses them); re-exported for the tests.
from ghostprobe.models.video_llama.tiny import tiny_tokenizer, tiny_video_tokenizer  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parents[1]


def moving_pattern(num_frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Frames that differ from each other (a bar sweeping over a noise background), so decode errors show."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 255, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    background = np.kron(background, np.ones((8, 8, 1), np.uint8))[:height, :width]
    frames = np.repeat(background[None], num_frames, axis=0)
    for t in range(num_frames):
        x = int(t * (width - 16) / max(num_frames - 1, 1))
        frames[t, :, x : x + 16] = (255, 255, 255)
    return frames


def write_label_file(path: Path, clips: list[dict]) -> Path:
    """A label file (docs/labels.md) holding `clips`."""
    path.write_text(json.dumps({"schema_version": 1, "clips": clips}, indent=2))
    return path


# 14 positives and 22 negatives, the hard negatives (cut_in, other_hazard) included.
LABELS = ["ghost_probing"] * 14 + ["cut_in"] * 7 + ["other_hazard"] * 6 + ["normal"] * 9
CLIP_IDS = [f"clip{k:03d}" for k in range(len(LABELS))]
VAL_LABELS = ["ghost_probing", "cut_in", "normal", "other_hazard", "ghost_probing"] * 2
VAL_IDS = [f"val{k:02d}" for k in range(len(VAL_LABELS))]


def draw_clip(clip_index: int, positive: bool, num_frames: int = 6) -> np.ndarray:
    """Little dashcam-like frames: grey road, a parked car, and (positives) a red walker stepping out from behind."""
    frames = np.zeros((num_frames, 36, 64, 3), np.uint8)
    frames[:, :12] = (135, 170, 215)  # sky
    frames[:, 12:] = (90, 90, 95)  # road
    frames[:, 14:26, 8:24] = (30, 40, 60 + 5 * (clip_index % 20))  # the occluder
    for t in range(num_frames):
        if positive:
            x = 20 + 5 * t
            frames[t, 16:28, x : x + 4] = (220, 40, 40)
    return frames


def write_frames_dataset(path: Path) -> Path:
    """A DatasetDict on disk with sample_id, clip_id, video and uint8 frames for every test and val clip, and the
    prep_report.json naming the (absent) videos folder `path.parent / "videos"` that `video` is relative to."""
    from datasets import Dataset, DatasetDict, Features, Value

    from ghostprobe.dataset import UINT8_FRAMES
    from ghostprobe.frames import packed_frames

    features = Features(
        {"sample_id": Value("string"), "clip_id": Value("string"), "video": Value("string"), "frames": UINT8_FRAMES}
    )

    def split(ids, labels):
        frames = [packed_frames(draw_clip(k, label == "ghost_probing")) for k, label in enumerate(labels)]
        return Dataset.from_dict(
            {"sample_id": ids, "clip_id": ids, "video": [f"clips/{c}.mp4" for c in ids], "frames": frames},
            features=features,
        )

    DatasetDict(test=split(CLIP_IDS, LABELS), val=split(VAL_IDS, VAL_LABELS)).save_to_disk(str(path))
    (path / "prep_report.json").write_text(json.dumps({"videos_root": str(path.parent / "videos")}))
    return path


def synthetic_scores(labels, skill: float, seed: int, no_answer=()) -> np.ndarray:
    """P(ghost probing) that separates the classes by `skill`; positions in `no_answer` are NaN."""
    rng = np.random.default_rng(seed)
    y = np.array([label == "ghost_probing" for label in labels])
    p = 1 / (1 + np.exp(-(skill * (2 * y - 1) + rng.normal(0, 1.2, len(y)))))
    p[list(no_answer)] = np.nan
    return p


def prediction_row(split, sample_id, label, p, model, prompt, fingerprint, rng, k) -> dict:
    positive = label == "ghost_probing"
    no_answer = np.isnan(p)
    answer = "不确定，画面太暗" if no_answer else ("是，行人从停放车辆后突然出现" if p >= 0.5 else "否，没有鬼探头")
    return {
        "key": f"{model}:{split}:{sample_id}",
        "run_identity": f"{model}:{prompt}",
        "sample_id": sample_id,
        "clip_id": sample_id,
        "split": split,
        "window_index": 0,
        "window_end_s": 5.0,
        "label": label,
        "is_ghost_probing": positive,
        "actor": ["pedestrian", "cyclist", "scooter"][k % 3] if label != "normal" else None,
        "occluder": ["parked_car", "bus", "wall"][k % 3] if positive else None,
        "light": ["day", "night"][k % 2],
        "weather": ["clear", "rain"][(k // 2) % 2],
        "t_event_s": 3.0 + 0.1 * k if positive else None,
        "model": model,
        "prompt": prompt,
        "data_fingerprint": fingerprint,
        "p_ghost_probing": None if no_answer else float(p),
        "answer": answer,
        "parsed_answer": None if no_answer else bool(p >= 0.5),
        "event_time_s": None,
        "latency_s": float(rng.uniform(0.5, 3.0)),
        "tokens_in": 900,
        "tokens_out": 12,
        "cost_usd": 0.0,
        "error": "API timeout after 3 retries" if no_answer and positive else None,
    }


def make_run_dir(
    out_dir: Path,
    dataset_path: Path,
    model="videollama2_7b_finetuned",
    prompt="zh",
    skill=1.5,
    seed=0,
    clip_ids=CLIP_IDS,
    no_answer=(3, 20),
    earliness=True,
    fingerprint="test:abc+val:def",
    gallery_size=3,
) -> Path:
    """An eval output dir as eval/run.py writes it, for the clips in `clip_ids` (a subset for compare tests)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    p_test = synthetic_scores(LABELS, skill, seed, no_answer)
    p_val = synthetic_scores(VAL_LABELS, skill, seed + 100)
    keep = [k for k, c in enumerate(CLIP_IDS) if c in set(clip_ids)]
    test = [prediction_row("test", CLIP_IDS[k], LABELS[k], p_test[k], model, prompt, fingerprint, rng, k) for k in keep]
    val = [
        prediction_row("val", VAL_IDS[k], VAL_LABELS[k], p_val[k], model, prompt, fingerprint, rng, k)
        for k in range(len(VAL_IDS))
    ]
    with open(out_dir / "predictions.jsonl", "w", encoding="utf-8") as f:
        for row in val + test:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    from eval.summarize import metrics_document, summarize
    from ghostprobe.config import compose

    cfg = OmegaConf.to_container(
        compose(
            "eval",
            [
                f"data.path={dataset_path}",
                f"output_dir={out_dir}",
                "metrics.bootstrap_resamples=200",
                f"report.gallery_size={gallery_size}",
            ],
        ),
        resolve=True,
    )
    summary = summarize(test, val, [], cfg, None)
    windows = [
        (r["clip_id"], end, min(1.0, r["p_ghost_probing"] * end / 4))
        for r in test
        if r["p_ghost_probing"] is not None
        for end in (1.0, 2.0, 3.0, 4.0)
    ]
    clips = {r["clip_id"]: (r["is_ghost_probing"], r["t_event_s"]) for r in test}
    summary["earliness"] = M.earliness_metrics(windows, clips) if earliness else None
    metrics = metrics_document(
        run_identity=f"{model}:{prompt}",
        model=model,
        prompt=prompt,
        summary=summary,
        config=cfg,
        data={"path": str(dataset_path), "split": "test", "fingerprint": fingerprint, "num_samples": len(test)},
    )
    (out_dir / "metrics.json").write_text(
        json.dumps(metrics, indent=2, ensure_ascii=False, allow_nan=False), encoding="utf-8"
    )
    return out_dir


def tiny_model(seed: int = 0) -> VideoLlamaForConditionalGeneration:
    """A random tiny-preset model in eval mode."""
    torch.manual_seed(seed)
    return VideoLlamaForConditionalGeneration(video_llama_config("tiny")).eval()


def tiny_inputs(config: VideoLlamaConfig, batch: int = 2, frames: int = 3, text_len: int = 6, seed: int = 0):
    """(input_ids, attention_mask, pixel_values) with one clip's placeholders after a bos token per row."""
    generator = torch.Generator().manual_seed(seed)
    text = torch.randint(3, config.text_config.vocab_size, (batch, text_len), generator=generator)
    video = torch.full((batch, config.num_video_query_tokens), config.video_token_index)
    input_ids = torch.cat([torch.ones(batch, 1, dtype=torch.long), video, text], dim=1)
    size = config.vision_config.image_size
    pixel_values = torch.randn(batch, frames, 3, size, size, generator=generator)
    return input_ids, torch.ones_like(input_ids), pixel_values
