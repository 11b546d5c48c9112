#!/usr/bin/env bash
# The README's test command: sets up .venv if needed, then runs the CPU test suite. Extra args go to pytest.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo_root/scripts/setup_env.sh"
# Label Studio for the review loop's server test (tests/test_review_label_studio.py), in a virtualenv of its own.
bash "$repo_root/scripts/setup_label_studio.sh" || echo "test.sh: Label Studio setup failed: the review server test skips (and fails under CI)"
cd "$repo_root"
exec python -m pytest "$@"
