#!/usr/bin/env bash
# The README's test command: sets up .venv if needed, then runs the CPU test suite. Extra args go to pytest.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo_root/scripts/setup_env.sh"
cd "$repo_root"
exec python -m pytest "$@"
