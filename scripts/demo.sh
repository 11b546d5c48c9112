#!/usr/bin/env bash
# The README's main job on the built-in default: synthetic dashcam clips -> prepared train/val/test datasets.
# Sets up .venv on first use. Extra key=value arguments go to the data-prep stage (e.g. source.generator.num_clips=50).
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo_root/scripts/setup_env.sh"
cd "$repo_root"
python data_prep/main.py source=synthetic "$@"
