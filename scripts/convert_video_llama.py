"""Convert original Video-LLaMA-2 checkpoints into a folder that `VideoLlamaForConditionalGeneration.from_pretrained`
loads offline.

    python scripts/convert_video_llama.py --eva-vit eva_vit_g.pth --blip2 blip2_pretrained_flant5xxl.pth \
        --vl VL_LLaMA_2_7B_Finetuned.pth --llama llama-2-7b-chat-hf --out checkpoints/video-llama-2-7b-finetuned

Exits 1 with the offending keys named when a source does not fit the model (unknown, missing or mis-shaped keys);
every check runs before anything is written. Sources are read lazily and each tensor is written to its shard as soon
as it is converted: peak memory is about the largest source file plus 0.5 GB, whatever the model's size
(docs/benchmarks.md). --out is created whole at the end (a killed run leaves no half folder there).
"""

import argparse
import sys

from ghostprobe.models.video_llama import video_llama_config
from ghostprobe.models.video_llama.convert import DEFAULT_MAX_SHARD_SIZE, DTYPES, ConversionError, convert_checkpoints


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, convert, print the per-source report; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eva-vit", help="eva_vit_g.pth (optional if the BLIP-2 file holds visual_encoder.*)")
    parser.add_argument("--blip2", required=True, help="blip2_pretrained_flant5xxl.pth")
    parser.add_argument("--vl", required=True, help="VL_LLaMA_2_{7B,13B}_{Pretrained,Finetuned}.pth")
    parser.add_argument("--llama", required=True, help="the llama-2-*-chat-hf folder shipped with the VL checkpoint")
    parser.add_argument("--out", required=True, help="output folder (must not exist yet, or be empty)")
    parser.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        default="fp16",
        help="dtype of ViT, llama_proj and LLM weights (Q-Former side stays fp32); default fp16",
    )
    parser.add_argument(
        "--preset",
        default="7b",
        choices=["7b", "13b", "tiny"],
        help="architecture of the non-LLM parts (7b and 13b share it); the LLM comes from --llama",
    )
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="load files that torch.load(weights_only=True) refuses: runs code in them, trusted files only",
    )
    parser.add_argument(
        "--max-shard-size",
        default=DEFAULT_MAX_SHARD_SIZE,
        help=f"largest safetensors file written (default {DEFAULT_MAX_SHARD_SIZE})",
    )
    args = parser.parse_args(argv)
    try:
        convert_checkpoints(
            args.out,
            llama=args.llama,
            vl=args.vl,
            blip2=args.blip2,
            eva_vit=args.eva_vit,
            base_config=video_llama_config(args.preset),
            dtype=args.dtype,
            allow_pickle=args.allow_pickle,
            max_shard_size=args.max_shard_size,
        )
    except ConversionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
