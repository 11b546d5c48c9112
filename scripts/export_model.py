"""Export a trained model as one plain folder: LoRA merged into the base, ready for `from_pretrained` and eval.

    python scripts/export_model.py run_dir=runs/lora_fewshot/20250101-120000 out=checkpoints/lora-merged
    python scripts/export_model.py run_dir=RUN/checkpoint-200 out=DIR dtype=bf16 base_model=/new/place/of/base

`run_dir` may be a run directory (its best complete checkpoint is taken, see
ghostprobe.models.video_llama.run_dir.best_checkpoint) or one checkpoint folder. The output holds config.json,
model.safetensors, the tokenizer and processor_config.json: `python eval/run.py model=tiny model.path=DIR ...`
loads it like a converted checkpoint, without peft and without the merge at load time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from omegaconf import DictConfig

from ghostprobe.cli import entry_point
from ghostprobe.dtypes import dtype_by_name
from ghostprobe.models.video_llama.processing import VideoLlamaProcessor
from ghostprobe.models.video_llama.run_dir import (
    checkpoint_info,
    load_video_llama,
    resolve_model_dir,
)


def export(run_dir: str | Path, out: str | Path, dtype: str = "fp32", base_model: str | None = None) -> Path:
    """Write the merged model of `run_dir` (run directory or checkpoint) to `out`; return `out`."""
    torch_dtype = dtype_by_name(dtype)
    source = resolve_model_dir(run_dir)
    info = checkpoint_info(source)
    model = load_video_llama(source, base_model=base_model, dtype=torch_dtype)
    out = Path(out)
    model.save_pretrained(out)
    VideoLlamaProcessor.from_pretrained(source).save_pretrained(out)
    provenance = {
        "exported_from": str(source.resolve()),
        "source_format": info["format"],
        "dtype": dtype,
        **{k: info[k] for k in ("base_model", "step", "prompt", "answers") if k in info},
    }
    (out / "export_info.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return out


@entry_point("export_model")
def main(cfg: DictConfig) -> None:
    try:
        out = export(cfg.run_dir, cfg.out, cfg.dtype, cfg.base_model)
    except (ValueError, FileNotFoundError) as error:  # FileNotFoundError: no checkpoint, or one that lost files
        raise SystemExit(f"export_model: {error}") from None
    print(f"exported {resolve_model_dir(cfg.run_dir)} -> {out}")


if __name__ == "__main__":
    main()
