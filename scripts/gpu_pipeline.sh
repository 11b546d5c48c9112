#!/usr/bin/env bash
# The pipeline's GPU paths end to end on one GPU, with the tiny random Video-LLaMA and a prepared dataset: what no CPU
# test can run. Figures and what they showed: docs/benchmarks.md, "The pipeline on a GPU".
#   1. training through the deepspeed launcher, ZeRO-3 in bf16 on NCCL: tiny_synthetic (every part trained, 2
#      micro-batches accumulated per step) and lora_fewshot (the LoRA recipe on the tiny LLaMA);
#   2. eval/run.py on each checkpoint under hardware=h100 (bf16 LLM, fp16 ViT, fp16 autocast) and under the v100x4
#      profile's dtypes on this one card (fp16 LLM and ViT; its 4-card device_map does not apply to 1 GPU), and the
#      same checkpoint on this machine's CPU in fp32 (hardware=cpu);
#   3. scripts/compare_scores.py: per clip, how far each GPU profile's P(yes) is from the CPU's, and whether the
#      answers agree.
#   bash scripts/gpu_pipeline.sh DATASET TINY_MODEL OUT_DIR
# DATASET: data_prep's output (e.g. python data_prep/main.py source=synthetic_demo prep.frame_size=56 ...);
# TINY_MODEL: python -m ghostprobe.models.video_llama.tiny DIR --image-size 56 --patch-size 8.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 3 ] || { echo "usage: bash scripts/gpu_pipeline.sh DATASET TINY_MODEL OUT_DIR" >&2; exit 2; }
data="$1" model="$2" out="$3"
python="${PYTHON:-python}"
"$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_pipeline: torch sees no GPU')"
export WANDB_MODE=disabled HF_HUB_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$out"

seconds() { local started=$SECONDS; "$@"; echo "  ($(( SECONDS - started )) s: $*)" | cut -c1-200; }

train=(logger=none deepspeed=zero3 train.precision=bf16 data.path="$data")
echo "== training: tiny_synthetic, ZeRO-3 bf16, 1 GPU"
seconds deepspeed --num_gpus 1 train/main.py +exp=tiny_synthetic "${train[@]}" model.path="$model" \
    output_dir="$out/full" train.max_steps=100 eval.every_steps=50 checkpoint.every_steps=50
echo "== training: lora_fewshot on the tiny model, ZeRO-3 bf16, 1 GPU"
seconds deepspeed --num_gpus 1 train/main.py +exp=lora_fewshot model=tiny "${train[@]}" model.path="$model" \
    output_dir="$out/lora" train.epochs=2 train.global_batch_size=8 eval.every_steps=10 checkpoint.every_steps=10

for run in full lora; do
    common=(model=tiny model.path="$out/$run" data.path="$data" prompt=en wandb.mode=disabled)
    echo "== eval $run: hardware=h100 (bf16)"
    seconds "$python" eval/run.py "${common[@]}" hardware=h100 output_dir="$out/eval_${run}_h100"
    echo "== eval $run: the v100x4 profile's dtypes on one card (fp16)"
    seconds "$python" eval/run.py "${common[@]}" hardware=v100x4 hardware.device=cuda hardware.device_map=null \
        hardware.max_memory=null output_dir="$out/eval_${run}_fp16"
    echo "== eval $run: CPU, fp32"
    seconds "$python" eval/run.py "${common[@]}" hardware=cpu output_dir="$out/eval_${run}_cpu"
    "$python" scripts/compare_scores.py --reference "$out/eval_${run}_cpu" "$out/eval_${run}_h100" \
        "$out/eval_${run}_fp16" | tee "$out/compare_${run}.txt"
done
