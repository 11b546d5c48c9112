#!/usr/bin/env bash
# Creates .venv-label-studio (once): Label Studio, for the review loop's tests (tests/test_review_label_studio.py)
# and for trying the loop locally. A virtualenv of its own: Label Studio pins openai<2 and a stack of Django packages
# that would clash with the project's. Also a migrated empty database that the tests copy (migrating a fresh one
# takes a minute or more). Idempotent: a second call only checks. GHOSTPROBE_LABEL_STUDIO_VENV picks another folder,
# GHOSTPROBE_PYTHON another interpreter.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${GHOSTPROBE_LABEL_STUDIO_VENV:-$repo_root/.venv-label-studio}"
python_bin="${GHOSTPROBE_PYTHON:-python3}"
version="1.23.2"  # the tests speak this version's API (tokens, local files, export)
stamp="$venv/.ghostprobe-installed"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$version" ]; then
  exit 0
fi
[ -x "$venv/bin/python" ] || "$python_bin" -m venv "$venv"
"$venv/bin/python" -m pip install -q "label-studio==$version"
template="$venv/template-data"
rm -rf "$template"
# Any label-studio command migrates its database first; `version` does nothing else. Offline: no version check.
LABEL_STUDIO_BASE_DATA_DIR="$template" LATEST_VERSION_CHECK=false COLLECT_ANALYTICS=false \
  "$venv/bin/label-studio" version --data-dir "$template" >/dev/null
echo "$version" > "$stamp"
