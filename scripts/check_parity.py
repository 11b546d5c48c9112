"""Prove that the project shows Video-LLaMA-2 exactly what the original pipeline shows it, on golden outputs.

    python scripts/check_parity.py fixture=../shared/parity [preset=tiny] [num_frames=8] [summary=FILE.json]

A fixture is a folder produced by the ORIGINAL code (layout: ../shared/parity/README.md): `checkpoints/` (EVA ViT,
BLIP-2 and VL_*.pth files, a llama-2-*-chat-hf folder), `cases_spec.json`, `cases.json`, the videos, and the
original's arrays (`<video>_frames_original[_S].npy`, `pixel_values_original[_S].npy`, `video_embeds_original.npy`,
`logits/`, `inputs_embeds/`). This script runs the project's own path end to end and compares:
1. the checkpoints converted by scripts/convert_video_llama.py's converter (fp32);
2. each video through data prep (`prepare_dataset`, uniform sampling, decoder resize at the model's image size):
   frame indices and frames exactly, pixel values (atol 1e-6), video embeddings (atol 1e-4);
3. each case through the processor and the backend: prompt text and token ids exactly (also with every other
   tokenizer the fixture's LLaMA folders ship), inputs_embeds and next-token logits (atol 1e-4), P(yes) of `score`
   (atol 1e-5), the 8 greedy tokens of `generate` exactly.
Prints one row per check and a JSON summary; exits 1 on any mismatch.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from data_prep.prepare import prepare_dataset
from ghostprobe.cli import entry_point
from ghostprobe.config import CONF_DIR
from ghostprobe.frames import frames_from_row
from ghostprobe.models.base import ClipInput, build_model
from ghostprobe.models.video_llama import video_llama_config
from ghostprobe.models.video_llama.backend import answer_logits
from ghostprobe.models.video_llama.checkpoint_sources import has_llama_weights
from ghostprobe.models.video_llama.convert import (
    VIDEO_PLACEHOLDER_TOKEN,
    convert_checkpoints,
)
from ghostprobe.models.video_llama.processing import VideoLlamaProcessor
from ghostprobe.prompts import Prompt

TOLERANCES = {"pixel_values": 1e-6, "video_embeds": 1e-4, "inputs_embeds": 1e-4, "logits": 1e-4, "p_yes": 1e-5}


class Checks:
    """Rows of (subject, check, ok, detail); `close` and `equal` add one each."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, subject: str, check: str, ok: bool, detail: str = "") -> None:
        self.rows.append({"subject": subject, "check": check, "ok": bool(ok), "detail": detail})

    def equal(self, subject: str, check: str, ours, original) -> None:
        if isinstance(ours, np.ndarray):
            same = ours.shape == original.shape and np.array_equal(ours, original)
            detail = (
                "equal"
                if same
                else (
                    f"shape {ours.shape} vs {original.shape}"
                    if ours.shape != original.shape
                    else f"{int((ours != original).sum())} values differ"
                )
            )
        else:
            same = ours == original
            detail = "equal" if same else f"project {_short(ours)} vs original {_short(original)}"
        self.add(subject, check, same, detail)

    def close(self, subject: str, check: str, ours, original, atol: float) -> None:
        ours, original = np.asarray(ours, np.float64), np.asarray(original, np.float64)
        if ours.shape != original.shape:
            self.add(subject, check, False, f"shape {ours.shape} vs {original.shape}")
            return
        diff = float(np.abs(ours - original).max()) if ours.size else 0.0
        self.add(subject, check, diff <= atol, f"max abs diff {diff:.2e} (atol {atol:g})")

    @property
    def ok(self) -> bool:
        return all(row["ok"] for row in self.rows)


def _short(value) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


def llama_folders(checkpoints: Path) -> tuple[Path, list[Path]]:
    """(the LLaMA folder with weights, every LLaMA folder that ships a tokenizer) of a fixture."""
    folders = sorted(p for p in checkpoints.iterdir() if (p / "config.json").is_file())
    weighted = [p for p in folders if has_llama_weights(p)]
    if len(weighted) != 1:
        raise SystemExit(
            f"check_parity: expected one LLaMA folder with weights in {checkpoints}, found {[p.name for p in weighted]}"
        )
    return weighted[0], folders


def convert_fixture(checkpoints: Path, preset: str, out_dir: Path) -> Path:
    """The fixture's original checkpoints through the project's converter, in fp32 (the fixture ran in fp32)."""

    def one(pattern: str, required: bool = True) -> Path | None:
        found = sorted(checkpoints.glob(pattern))
        if len(found) > 1 or (required and not found):
            raise SystemExit(f"check_parity: expected one {pattern} in {checkpoints}, found {[p.name for p in found]}")
        return found[0] if found else None

    llama, _ = llama_folders(checkpoints)
    convert_checkpoints(
        out_dir,
        llama=llama,
        vl=one("VL_*.pth"),
        blip2=one("blip2*.pth"),
        eva_vit=one("eva_vit*.pth", required=False),
        base_config=video_llama_config(preset),
        dtype="fp32",
        log=lambda line: None,
    )
    return out_dir


def prepare_videos(fixture: Path, videos: list[str], frame_size: int, num_frames: int, work_dir: Path) -> dict:
    """video -> its dataset row, through the project's data prep (the path every evaluated clip takes)."""
    from datasets import load_from_disk

    labels = {
        "schema_version": 1,
        "clips": [
            {"clip_id": f"video_{k}", "video": video, "label": "normal", "split": "test"}
            for k, video in enumerate(videos)
        ],
    }
    labels_path = work_dir / f"labels_{frame_size}.json"
    labels_path.write_text(json.dumps(labels))
    # conf/data_prep.yaml's defaults (read as files: Hydra is already running this script) with uniform sampling.
    settings = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "data_prep.yaml").prep)
    settings.update(
        frame_size=frame_size,
        resize="decoder",
        sampling={
            **OmegaConf.to_container(OmegaConf.load(CONF_DIR / "sampling" / "uniform.yaml")),
            "num_frames": num_frames,
        },
        split=OmegaConf.to_container(OmegaConf.load(CONF_DIR / "split" / "random.yaml")),
    )
    out_dir = work_dir / f"prepared_{frame_size}"
    report = prepare_dataset(labels_path, out_dir, settings, videos_dir=fixture)
    if report["rejected"]:
        raise SystemExit(f"check_parity: data prep rejected fixture videos: {report['rejected']}")
    rows = load_from_disk(str(out_dir))["test"].with_format("numpy", columns=["frames"], output_all_columns=True)
    by_clip = {row["clip_id"]: row for row in rows}
    return {video: by_clip[f"video_{k}"] for k, video in enumerate(videos)}


def original_frames_file(fixture: Path, video: str, size: int) -> Path:
    stem = Path(video).stem
    sized = fixture / f"{stem}_frames_original_{size}.npy"
    return sized if sized.exists() or size != 224 else fixture / f"{stem}_frames_original.npy"


def check_videos(
    checks: Checks, fixture: Path, videos: list[str], cases: dict, image_size: int, num_frames: int, work_dir: Path
) -> dict:
    """Frames of the project's data prep against the original's; returns video -> ClipInput at the model's size."""
    clips = {}
    sizes = sorted({image_size, 224})
    for size in sizes:
        rows = prepare_videos(fixture, videos, size, num_frames, work_dir)
        for video, row in rows.items():
            reference = original_frames_file(fixture, video, size)
            indices = [c["frame_indices"] for c in cases.values() if c["video"] == video]
            if size == image_size and indices:
                checks.equal(video, "frame indices", [int(i) for i in row["frame_indices"]], indices[0])
            if reference.exists():
                checks.equal(
                    video, f"frames {size}x{size} (decoder resize)", frames_from_row(row["frames"]), np.load(reference)
                )
            elif size == image_size:
                checks.add(video, f"frames {size}x{size}", False, f"no {reference.name} in the fixture")
            if size == image_size:
                clips[video] = ClipInput(
                    video, frames_from_row(row["frames"]), tuple(float(t) for t in row["timestamps_s"])
                )
    return clips


def check_pixels(checks: Checks, fixture: Path, model, processor: VideoLlamaProcessor, clip: ClipInput) -> None:
    pixels = processor.pixel_values(clip.frames, clip.clip_id)  # [T, 3, S, S]
    suffix = "" if processor.image_size == 224 else f"_{processor.image_size}"
    reference = fixture / f"pixel_values_original{suffix}.npy"
    if reference.exists():  # the original's [3, T, S, S]
        checks.close(
            clip.clip_id,
            "pixel values",
            pixels.numpy(),
            np.load(reference).transpose(1, 0, 2, 3),
            TOLERANCES["pixel_values"],
        )
    embeds_file = fixture / "video_embeds_original.npy"
    if embeds_file.exists():
        with torch.inference_mode():
            embeds = model.get_video_features(pixels[None])
        checks.close(clip.clip_id, "video embeddings", embeds.numpy(), np.load(embeds_file), TOLERANCES["video_embeds"])


def check_case(checks: Checks, fixture: Path, backend, tokenizer_processors: dict, case: dict, clip: ClipInput) -> None:
    name = case["id"]
    prompt = Prompt(
        name=name,
        language=case["language"],
        system=case["system"],
        question=case["question"],
        when_question=case["question"],
        yes_word=case["yes_word"],
        no_word=case["no_word"],
    )
    processor, model = backend.processor, backend.model
    checks.equal(name, "prompt text", processor.prompt_text(prompt, clip.timestamps_s), case["prompt"])
    expected_ids = [processor.video_token_id if i == -1 else i for i in case["input_ids_with_placeholder"]]
    for label, other in tokenizer_processors.items():
        checks.equal(
            name,
            f"token ids ({label})",
            other.prompt_ids(prompt, clip.timestamps_s),
            [other.video_token_id if i == -1 else i for i in case["input_ids_with_placeholder"]],
        )
    choice = processor.answer_choice(prompt.yes_word, prompt.no_word)
    answer = case["answer"]
    checks.equal(
        name,
        "answer token ids",
        [list(choice.prefix_ids), choice.yes_id, choice.no_id],
        [answer["shared_prefix_ids"], answer["yes_id"], answer["no_id"]],
    )

    batch = processor([clip], prompt)
    checks.equal(name, "model input ids", batch["input_ids"][0].tolist(), expected_ids)
    with torch.inference_mode():
        embeds = model._embed_prompt(batch["input_ids"], batch["pixel_values"])[0]
        logits = answer_logits(model, batch)[0]
    checks.close(
        name,
        "inputs_embeds",
        embeds.numpy(),
        np.load(fixture / case["inputs_embeds_file"]),
        TOLERANCES["inputs_embeds"],
    )
    checks.close(
        name, "next-token logits", logits.numpy(), np.load(fixture / case["logits_file"]), TOLERANCES["logits"]
    )
    if choice.prefix_ids and answer.get("step2_logits_file"):
        with torch.inference_mode():
            step2 = answer_logits(model, processor([clip], prompt, suffix_ids=choice.prefix_ids))[0]
        checks.close(
            name,
            "logits after the shared prefix",
            step2.numpy(),
            np.load(fixture / answer["step2_logits_file"]),
            TOLERANCES["logits"],
        )

    scored = backend.score([clip], prompt)[0]
    checks.close(name, "P(yes) of score()", scored.p_ghost_probing, answer["p_yes"], TOLERANCES["p_yes"])
    greedy = case["greedy"]
    backend.generation.update(do_sample=False, max_new_tokens=int(greedy["max_new_tokens"]))
    generated = backend.generate([clip], prompt)[0]
    checks.equal(
        name,
        f"greedy {greedy['max_new_tokens']} tokens of generate()",
        generated.extra.get("answer_token_ids"),
        greedy["new_token_ids"],
    )


def tokenizer_variants(folders: list[Path], converted: Path) -> dict[str, VideoLlamaProcessor]:
    """The converted folder's processor, plus one per other way the fixture's LLaMA folders can tokenize."""
    from transformers import AutoTokenizer

    variants = {"converted folder": VideoLlamaProcessor.from_pretrained(converted)}
    for folder in folders:
        if (folder / "tokenizer.json").is_file():  # transformers reads tokenizer.json when a folder has one
            tokenizer = AutoTokenizer.from_pretrained(folder)
            tokenizer.add_tokens([VIDEO_PLACEHOLDER_TOKEN], special_tokens=True)
            base = variants["converted folder"]
            variants[f"{folder.name}/tokenizer.json"] = VideoLlamaProcessor(
                tokenizer,
                image_size=base.image_size,
                num_video_query_tokens=base.num_video_query_tokens,
                max_frames=base.max_frames,
            )
    return variants


def run_checks(fixture: Path, preset: str, num_frames: int, work_dir: Path) -> Checks:
    checks = Checks()
    cases = {case["id"]: case for case in json.loads((fixture / "cases.json").read_text())["cases"]}
    spec = json.loads((fixture / "cases_spec.json").read_text())["cases"]
    for item in spec:
        if item["id"] not in cases:
            checks.add(item["id"], "case present in cases.json", False, "missing")
        elif any(cases[item["id"]][key] != value for key, value in item.items() if key != "description"):
            checks.add(item["id"], "cases.json inputs = cases_spec.json", False, "the inputs differ")
    _, folders = llama_folders(fixture / "checkpoints")
    converted = convert_fixture(fixture / "checkpoints", preset, work_dir / "converted")
    backend = build_model(
        {"kind": "video_llama", "path": str(converted), "dtype": "fp32", "device": "cpu", "batch_size": 1}
    )
    videos = sorted({item["video"] for item in spec})
    clips = check_videos(checks, fixture, videos, cases, backend.processor.image_size, num_frames, work_dir)
    for clip in clips.values():
        check_pixels(checks, fixture, backend.model, backend.processor, clip)
    variants = tokenizer_variants(folders, converted)
    for item in spec:
        if item["id"] in cases:
            check_case(checks, fixture, backend, variants, cases[item["id"]], clips[item["video"]])
    return checks


def print_table(checks: Checks) -> None:
    width = max(len(row["subject"]) for row in checks.rows)
    check_width = max(len(row["check"]) for row in checks.rows)
    for row in checks.rows:
        status = "ok  " if row["ok"] else "FAIL"
        print(f"{status}  {row['subject']:<{width}}  {row['check']:<{check_width}}  {row['detail']}")


@entry_point("check_parity")
def main(cfg: DictConfig) -> None:
    fixture = Path(cfg.fixture).expanduser().resolve()
    if not (fixture / "cases.json").is_file():
        raise SystemExit(f"check_parity: {fixture} is not a parity fixture (no cases.json)")
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="ghostprobe-parity-") as tmp:
        checks = run_checks(fixture, cfg.preset, int(cfg.num_frames), Path(tmp))
    print_table(checks)
    failed = [row for row in checks.rows if not row["ok"]]
    summary = {
        "fixture": str(fixture),
        "ok": checks.ok,
        "checks": len(checks.rows),
        "failed": len(failed),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "rows": checks.rows,
    }
    print(json.dumps({key: value for key, value in summary.items() if key != "rows"}))
    if cfg.summary:
        Path(cfg.summary).write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    if failed:
        print(f"check_parity: {len(failed)} of {len(checks.rows)} checks FAILED", file=sys.stderr)
        sys.exit(1)
    print(f"check_parity: all {len(checks.rows)} checks passed")


if __name__ == "__main__":
    main()
