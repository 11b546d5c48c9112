#!/usr/bin/env bash
# Creates .venv (once) and installs the project with its CPU torch pin. Idempotent: a second call only checks.
# Sourced by the README's commands; set GHOSTPROBE_PYTHON to use another interpreter.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${GHOSTPROBE_VENV:-$repo_root/.venv}"
python_bin="${GHOSTPROBE_PYTHON:-python3}"
stamp="$venv/.ghostprobe-installed"

if [ ! -x "$venv/bin/python" ]; then
  "$python_bin" -m venv "$venv"
fi
# Re-install when pyproject.toml changed since the last install.
if [ ! -f "$stamp" ] || [ "$repo_root/pyproject.toml" -nt "$stamp" ]; then
  "$venv/bin/python" -m pip install -q --upgrade pip
  # Pinned CPU build first: an unpinned torch would pull a multi-GB CUDA build.
  "$venv/bin/python" -m pip install -q "torch==2.13.0"
  "$venv/bin/python" -m pip install -q -e "$repo_root[dev]"
  touch "$stamp"
fi
export PATH="$venv/bin:$PATH"
export VIRTUAL_ENV="$venv"
