#!/usr/bin/env bash
# The README's main job on the built-in default, end to end on CPU:
#   synthetic dashcam clips -> prepared datasets -> tiny random Video-LLaMA -> fine-tuned on 2 CPU ranks (DeepSpeed)
#   -> evaluated on the test split -> report.html.
# Sets up .venv on first use. Everything lands under $GHOSTPROBE_DEMO_DIR (default runs/demo); a second run reuses
# the clips, the prepared frames and a finished training run, so it only evaluates again.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo_root/scripts/setup_env.sh"
cd "$repo_root"
demo="${GHOSTPROBE_DEMO_DIR:-$repo_root/runs/demo}"
export WANDB_MODE="${WANDB_MODE:-offline}" HF_HUB_OFFLINE=1

echo "== 1/4 data prep: synthetic clips -> $demo/prepared"
python data_prep/main.py source=synthetic_demo source.clips_dir="$demo/clips" out_dir="$demo/prepared" \
    prep.frame_size=56 prep.num_proc=2

echo "== 2/4 the tiny random model -> $demo/tiny_video_llama"
[ -f "$demo/tiny_video_llama/config.json" ] ||
    python -m ghostprobe.models.video_llama.tiny "$demo/tiny_video_llama" --image-size 56 --patch-size 8

echo "== 3/4 training: deepspeed --num_gpus 2 train/main.py +exp=tiny_synthetic -> $demo/train"
if [ ! -f "$demo/train/summary.json" ]; then
    resume=()
    [ -d "$demo/train" ] && resume=(resume=auto)  # an interrupted demo continues its run
    deepspeed --num_gpus 2 train/main.py +exp=tiny_synthetic data.path="$demo/prepared" \
        model.path="$demo/tiny_video_llama" output_dir="$demo/train" "${resume[@]}"
fi

echo "== 4/4 evaluation: python eval/run.py model=tiny model.path=$demo/train -> $demo/eval"
python eval/run.py model=tiny model.path="$demo/train" prompt=en data.path="$demo/prepared" \
    output_dir="$demo/eval"
echo "report: $demo/eval/report.html"
