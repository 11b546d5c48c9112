#!/usr/bin/env bash
# Fill .whl/ (git-ignored) with the wheels scripts/gpu_check.sh installs on a GPU machine that has only torch and
# transformers and no network. Run it where pip reaches the package index, then carry .whl/ with the checkout:
#   bash scripts/gpu_wheels.sh                              # compiled wheels for CPython 3.10-3.13, x86-64 Linux
#   PYTHON_VERSIONS=3.12 ARCH=aarch64 bash scripts/gpu_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
requirements=scripts/gpu_check_requirements.txt
mkdir -p .whl
# Every requirement as a wheel for this interpreter; pure-Python ones published only as source (antlr4's runtime)
# are built into a py3-none-any wheel that serves every version.
python -m pip wheel --quiet --no-deps --wheel-dir .whl -r "$requirements"
# The compiled ones again for each Python version the GPU machine may have.
compiled=$(grep -E '^(pillow|psutil)==' "$requirements")
arch="${ARCH:-x86_64}"
for version in ${PYTHON_VERSIONS:-3.10 3.11 3.12 3.13}; do
  # shellcheck disable=SC2086  # one argument per requirement
  python -m pip download --quiet --dest .whl --only-binary=:all: --no-deps --python-version "$version" \
    --platform "manylinux_2_28_$arch" --platform "manylinux_2_17_$arch" --platform "manylinux2014_$arch" $compiled
done
ls .whl
