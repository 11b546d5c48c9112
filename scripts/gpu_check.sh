#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md on one H100/H200 in under 8 minutes, every one written to one JSON file:
# scoring latency of the 7B and 13B shapes in bf16 and fp16 at batch 1 and 16, training step time and MFU at 7B
# shapes (lora_fewshot and full_ft, LLaMA at 4 and 8 layers, scaled to 32), and the fp16 NaN guard on real-shape
# activations. scripts/gpu_check.py says how each figure is made.
#   bash scripts/gpu_check.sh                         # -> gpu_check.json
#   bash scripts/gpu_check.sh OUT.json [gpu_check.py options...]
# The machine needs Python with torch (CUDA) and transformers; the rest (scripts/gpu_check_requirements.txt) is
# installed from the wheels in .whl/, without network: fill .whl/ beforehand with scripts/gpu_wheels.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu_check.json}"
shift || true
python="${PYTHON:-python}"
"$python" -c "import torch, transformers" || { echo "gpu_check: $python lacks torch or transformers" >&2; exit 2; }
if ! "$python" -c "import peft, accelerate, psutil, hydra, omegaconf, PIL" 2>/dev/null; then
  if [ ! -d .whl ]; then
    echo "gpu_check: no .whl/ folder: run scripts/gpu_wheels.sh where pip reaches the index and carry .whl/ here" >&2
    exit 2
  fi
  # --no-deps: the list is complete beside torch and transformers' own dependencies, and pip's resolver would
  # otherwise insist on re-checking those against the (absent) index
  "$python" -m pip install --quiet --no-index --no-deps --find-links .whl -r scripts/gpu_check_requirements.txt
  "$python" -c "import peft, accelerate, psutil, hydra, omegaconf, PIL"
fi
# The figures are written step by step: a run stopped by the limit keeps what it measured.
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 \
  timeout "${GPU_CHECK_TIMEOUT_S:-480}" "$python" scripts/gpu_check.py --out "$out" "$@"
