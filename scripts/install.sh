#!/usr/bin/env bash
# Create a virtualenv with the CPU build of torch and semsearch installed in it.
#
# Plain `pip install sentence-transformers` on Linux pulls the CUDA build of torch
# (several GB of nvidia-* wheels). So torch is installed first, CPU build only:
#   1. a CPU wheel pip can already see (a local wheelhouse / --find-links), else
#   2. PyTorch's CPU index (https://download.pytorch.org/whl/cpu).
# Afterwards the script fails if any nvidia-* package got in.
#
# Usage: scripts/install.sh [VENV_DIR] [EXTRAS]     (defaults: .venv, test)
set -euo pipefail

VENV=${1:-.venv}
EXTRAS=${2-test}   # an explicit "" installs no extras
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${SEMSEARCH_TORCH_VERSION:-2.13.0}
CPU_INDEX=https://download.pytorch.org/whl/cpu

cd "$(dirname "$0")/.."
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip_() { "$VENV/bin/python" -m pip "$@"; }

# CPU wheels carry a "+cpu" local version; macOS wheels are CPU-only anyway.
torch_is_cpu() {
    [ "$(uname)" = Darwin ] && return 0
    "$VENV/bin/python" -c 'import importlib.metadata as m, sys; sys.exit("+cpu" not in m.version("torch"))' 2>/dev/null
}

if torch_is_cpu; then
    echo "install: CPU torch already present"
elif pip_ install -q --no-index --no-deps "torch==$TORCH_VERSION" 2>/dev/null && torch_is_cpu; then
    echo "install: torch $TORCH_VERSION (CPU) from a local wheel; its dependencies from PyPI"
    pip_ install -q "torch==$TORCH_VERSION"
elif [ "$(uname)" = Darwin ]; then
    pip_ install "torch==$TORCH_VERSION"
else
    pip_ uninstall -q -y torch 2>/dev/null || true
    echo "install: torch CPU build from $CPU_INDEX"
    pip_ install "torch==$TORCH_VERSION" --index-url "$CPU_INDEX" \
        || pip_ install torch --index-url "$CPU_INDEX"
fi

# Pin the torch just installed, so no dependency can swap it for a CUDA build from PyPI.
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
"$VENV/bin/python" -c 'import importlib.metadata as m; print("torch==" + m.version("torch"))' > "$constraints"
target=.
[ -n "$EXTRAS" ] && target=".[$EXTRAS]"
pip_ install -q -c "$constraints" -e "$target"

if pip_ list 2>/dev/null | grep -qi '^nvidia-'; then
    echo "install: CUDA packages were installed; this project needs the CPU build of torch" >&2
    exit 1
fi
torch_is_cpu || { echo "install: torch is not the CPU build" >&2; exit 1; }
echo "install: done ($VENV, torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)'))"
