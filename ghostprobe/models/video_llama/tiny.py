"""A complete, random-init tiny Video-LLaMA checkpoint folder, built offline in about a second.

The folder looks like a converted real checkpoint (model weights + config.json, a LLaMA tokenizer holding
`<ImageHere>`, processor_config.json), so the CPU demo, the eval stage and the trainer tests run the very code paths
the 7B/13B models use:

    python -m ghostprobe.models.video_llama.tiny data/tiny_video_llama

The tokenizer is a real transformers `LlamaTokenizer` (BPE with sentencepiece-style "▁" word starts and byte
fallback, so nothing is ever <unk>), whose pieces are trained on the prompts of conf/prompt/ and typical answers.
As in LLaMA-2's vocabulary, English answer words have a word-start piece ("▁Yes") while Chinese characters exist
only bare, so "是" after "[/INST]" becomes ["▁", "是"]: the scoring code must (and does) handle both.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import yaml
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import LlamaTokenizer

from ghostprobe.config import CONF_DIR
from ghostprobe.prompts import frames_message

from .convert import VIDEO_PLACEHOLDER_TOKEN
from .modeling import VideoLlamaForConditionalGeneration
from .presets import video_llama_config
from .processing import VideoLlamaProcessor

# conf/model/tiny.yaml's name: its folder is built in a second by this module, not converted from original checkpoints.
TINY_MODEL_NAME = "tiny_video_llama"
# Written into every folder built here: eval says "random-init stand-in" for such a model until it is trained.
RANDOM_INIT_MARKER = "random_init.json"
_SPECIAL_TOKENS = ["<unk>", "<s>", "</s>"]  # ids 0, 1, 2 as LLaMA-2
# Text the tokenizer must cover besides conf/prompt/. Chinese answers never start a line here, so that no "▁是"
# piece is learned (see the module docstring).
_EXTRA_TEXTS = [
    "[INST] <<SYS>>\n\n<</SYS>>\n\n<Video></Video> [/INST]",
    "Yes",
    "No",
    "Yes.",
    "No.",
    "Yes, a pedestrian suddenly emerges from behind a parked car.",
    "No, there is no ghost probing in this video.",
    "The cyclist appears at 3.5 seconds.",
    "none",
    "答：是，出现了鬼探头。",
    "答：否，没有鬼探头。",
    "答：约在第3秒。",
    "答：无",
    "0 1 2 3 4 5 6 7 8 9 0.5 1.5 2.5 3.5 4.5 seconds 秒",
]


def _training_texts() -> list[str]:
    """The prompts of conf/prompt/ (when the repository's conf/ is present), their frame messages and _EXTRA_TEXTS."""
    texts = list(_EXTRA_TEXTS)
    for path in sorted((CONF_DIR / "prompt").glob("*.yaml")):
        prompt = yaml.safe_load(path.read_text(encoding="utf-8"))
        texts += [str(prompt[key]) for key in ("system", "question", "when_question") if key in prompt]
        texts.append(frames_message([0.0, 1.2, 2.5, 3.7, 5.0, 6.2, 7.5, 8.7], prompt.get("language", "en")))
    return texts


def tiny_tokenizer(vocab_size: int = 1024) -> LlamaTokenizer:
    """A LLaMA-2-like tokenizer of exactly `vocab_size` tokens (<unk>=0, <s>=1, </s>=2, 256 bytes), no placeholder.

    Filling the vocabulary to the model's size means `<ImageHere>`, once added, gets id == vocab_size, as 32000
    for LLaMA-2. Deterministic: the same texts always give the same pieces and ids.
    """
    num_pieces = vocab_size - len(_SPECIAL_TOKENS) - 256
    if num_pieces < 256:
        raise ValueError(f"vocab_size={vocab_size} is too small for a byte-fallback tokenizer; use at least 515")
    # Pieces are learned word by word (split=True), as sentencepiece never merges across a word start.
    trainer_backend = Tokenizer(models.BPE(unk_token="<unk>"))
    trainer_backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=num_pieces, min_frequency=1, show_progress=False)
    trainer_backend.train_from_iterator(_training_texts(), trainer)
    learned = json.loads(trainer_backend.to_str())["model"]

    vocab = {token: i for i, token in enumerate(_SPECIAL_TOKENS)}
    vocab.update({f"<0x{byte:02X}>": len(_SPECIAL_TOKENS) + byte for byte in range(256)})
    for piece, _ in sorted(learned["vocab"].items(), key=lambda item: item[1])[:num_pieces]:
        vocab.setdefault(piece, len(vocab))
    while len(vocab) < vocab_size:  # small corpora run out of merges: unused filler pieces keep the size exact
        vocab[f"<unused_{len(vocab)}>"] = len(vocab)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learned["merges"]]
    merges = [m for m in merges if m[0] + m[1] in vocab]
    return LlamaTokenizer(vocab=vocab, merges=merges, legacy=False, add_bos_token=True)


def tiny_video_tokenizer(vocab_size: int = 1024) -> LlamaTokenizer:
    """`tiny_tokenizer()` with `<ImageHere>` added (id == vocab_size) and pad = unk, as the converter leaves it."""
    tokenizer = tiny_tokenizer(vocab_size)
    tokenizer.add_tokens([VIDEO_PLACEHOLDER_TOKEN], special_tokens=True)
    tokenizer.pad_token = tokenizer.unk_token
    return tokenizer


@torch.no_grad()
def _widen_init(model: VideoLlamaForConditionalGeneration) -> None:
    # At the 0.02 init the Q-Formers average the frames away and every clip gets the same score to 7 digits: tests
    # of batching, scoring and training could not see a mistake. Wider weights make each clip and token count.
    for name, param in model.named_parameters():
        if param.dim() != 2 or "embed" in name:
            continue
        if name.startswith("language_model."):
            param.mul_(5.0)
        else:
            param.normal_(std=0.3)


def random_model_of_preset(
    preset: str, device: str = "cpu", dtype: torch.dtype = torch.float32, llm_layers: int | None = None
) -> tuple[VideoLlamaForConditionalGeneration, VideoLlamaProcessor]:
    """A random-init model at `preset`'s shapes (LLaMA cut to `llm_layers` when given), built on `device` in `dtype`
    (a 13B fp32 copy would need 52 GB before a cast), and a processor with the tiny tokenizer: its ids (< 1025) exist
    in every preset's vocabulary and its prompts are about the real length. For benchmarks and checks at real shapes
    (scripts/bench_scoring.py, bench_train.py, gpu_check.py); the Q-Former side is in `dtype` too, precision policies
    cast it back."""
    config = video_llama_config(preset)
    if llm_layers is not None:
        config.text_config.num_hidden_layers = llm_layers
    tokenizer = tiny_video_tokenizer(1024)
    config.video_token_index = tokenizer.convert_tokens_to_ids(VIDEO_PLACEHOLDER_TOKEN)
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = VideoLlamaForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(default)
    processor = VideoLlamaProcessor(
        tokenizer,
        image_size=config.vision_config.image_size,
        num_video_query_tokens=config.num_video_query_tokens,
        max_frames=config.max_frames,
    )
    return model, processor


def build_tiny_checkpoint(out_dir: str | Path, seed: int = 0, image_size: int = 28, patch_size: int = 14) -> Path:
    """Write a random-init tiny-preset Video-LLaMA folder (model, tokenizer, processor) to `out_dir`; return it.

    `image_size`/`patch_size`: the ViT's input; the default 28/14 (4 patches) is the fastest for tests that only
    need the code paths, 56/8 (49 patches) is what a model must see to learn the synthetic task (conf/exp/
    tiny_synthetic.yaml): at 28 px the actor is a pixel or two.

    Load it as a converted checkpoint: `build_model({"kind": "video_llama", "path": out_dir})`, or
    `VideoLlamaForConditionalGeneration.from_pretrained(out_dir)` + `VideoLlamaProcessor.from_pretrained(out_dir)`.
    The same seed gives the same weights; they are drawn wider than a real init (see `_widen_init`) so that
    different clips get visibly different scores.
    """
    out_dir = Path(out_dir)
    config = video_llama_config("tiny")
    if image_size % patch_size:
        raise ValueError(f"image_size={image_size} is not a multiple of patch_size={patch_size}")
    config.vision_config.image_size, config.vision_config.patch_size = image_size, patch_size
    tokenizer = tiny_video_tokenizer(config.text_config.vocab_size)
    config.video_token_index = tokenizer.convert_tokens_to_ids(VIDEO_PLACEHOLDER_TOKEN)
    torch.manual_seed(seed)
    model = VideoLlamaForConditionalGeneration(config).eval()
    _widen_init(model)
    model.save_pretrained(out_dir)
    VideoLlamaProcessor(
        tokenizer,
        image_size=config.vision_config.image_size,
        num_video_query_tokens=config.num_video_query_tokens,
        max_frames=config.max_frames,
    ).save_pretrained(out_dir)
    (out_dir / RANDOM_INIT_MARKER).write_text(
        json.dumps(
            {
                "built_by": "ghostprobe.models.video_llama.tiny",
                "seed": seed,
                "trained": False,
                "note": "random weights: a stand-in that exercises the code paths, not a detector",
            },
            indent=2,
        )
        + "\n"
    )
    return out_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a random-init tiny Video-LLaMA checkpoint folder.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=28, help="ViT input size in pixels (default 28)")
    parser.add_argument("--patch-size", type=int, default=14, help="ViT patch size in pixels (default 14)")
    args = parser.parse_args(argv)
    print(f"wrote {build_tiny_checkpoint(args.out_dir, args.seed, args.image_size, args.patch_size)}")


if __name__ == "__main__":
    main()
