#!/usr/bin/env bash
# Create a virtualenv with torch (its CPU build wherever one can be had) and semsearch in it.
#
# sentence-transformers needs torch, and PyPI's torch for Linux brings several GB of CUDA
# libraries (nvidia-*) that this CPU service never uses. So torch is installed first, from the
# first of these that works, with one line saying which:
#   1. the torch already in the venv, if it is the CPU build;
#   2. a CPU wheel pip can see without an index (a wheelhouse in --find-links / PIP_FIND_LINKS);
#   3. PyTorch's CPU index ($SEMSEARCH_TORCH_INDEX), asked with a short timeout and one retry,
#      so that an unreachable index costs seconds, not minutes;
#   4. PyPI's torch: on Linux it brings the CUDA libraries. The install warns and goes on:
#      that torch runs on CPU too, it is only bigger.
# Then this package, with torch pinned to the one just installed so that no dependency swaps it.
#
# Usage: scripts/install.sh [VENV_DIR] [EXTRAS]
#   VENV_DIR  default .venv
#   EXTRAS    default none: what the service needs to run; "test" for the test suite
# Environment:
#   PYTHON                         interpreter for a new venv (default python3)
#   SEMSEARCH_TORCH_VERSION        torch version to prefer (default 2.13.0; "" = the newest)
#   SEMSEARCH_TORCH_INDEX          PyTorch's CPU index (default https://download.pytorch.org/whl/cpu)
#   SEMSEARCH_TORCH_INDEX_TIMEOUT  seconds per connection try to that index (default 10)
set -euo pipefail

VENV=${1:-.venv}
EXTRAS=${2-}
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${SEMSEARCH_TORCH_VERSION-2.13.0}
CPU_INDEX=${SEMSEARCH_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
INDEX_TIMEOUT=${SEMSEARCH_TORCH_INDEX_TIMEOUT:-10}

cd "$(dirname "$0")/.."
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip_() { "$VENV/bin/python" -m pip "$@"; }
say() { echo "install: $*"; }
warn() { echo "install: WARNING: $*" >&2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

torch_version() {
    "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null || true
}
# CPU builds carry a "+cpu" local version (in the wheel's name too); macOS builds are CPU-only.
is_cpu() { [ "$(uname)" = Darwin ] || [[ $1 == *+cpu* ]]; }

# The preferred version first, then the newest (a new Python may have no wheel of the pinned one).
torch_specs=(torch)
if [ -n "$TORCH_VERSION" ]; then
    pinned="torch==$TORCH_VERSION"
    [ "$(uname)" = Darwin ] || pinned="$pinned+cpu"
    torch_specs=("$pinned" torch)
fi

# fetch_cpu_wheel LOG PIP_ARGS...: download a CPU torch wheel into $work/wheels and print its
# path; fail if pip finds none or finds only a CUDA build (an index or wheelhouse may hold both).
fetch_cpu_wheel() {
    local log=$1 spec wheel
    shift
    for spec in "${torch_specs[@]}"; do
        rm -rf "$work/wheels"
        if pip_ download --no-deps -d "$work/wheels" "$@" "$spec" >>"$log" 2>&1; then
            wheel=$(ls "$work/wheels"/torch-*.whl)
            if is_cpu "$(basename "$wheel")"; then
                echo "$wheel"
                return 0
            fi
        fi
        # Unreachable: the unpinned try would only wait for the same timeouts again.
        unreachable "$log" && return 1
    done
    return 1
}

unreachable() {
    grep -qiE 'NewConnectionError|ConnectTimeout|timed out|connection (broken|refused|aborted)|ProxyError|SSLError|Max retries' "$1"
}

install_pypi_torch() {
    if [ -n "$TORCH_VERSION" ] && pip_ install "torch==$TORCH_VERSION"; then
        return 0
    fi
    say "torch: taking PyPI's newest torch instead${TORCH_VERSION:+ of $TORCH_VERSION}"
    pip_ install torch
}

install_torch() {
    local current wheel why
    current=$(torch_version)
    if [ -n "$current" ] && is_cpu "$current"; then
        say "torch $current (CPU build) is already installed; keeping it"
        return 0
    fi
    if wheel=$(fetch_cpu_wheel "$work/local.log" --no-index); then
        say "torch: a CPU wheel pip can see locally, $(basename "$wheel"); nothing to download"
        pip_ install -q --no-deps "$wheel"
        return 0
    fi
    if [ "$(uname)" = Darwin ]; then
        say "torch from PyPI (its macOS build is CPU-only)"
        install_pypi_torch
        return 0
    fi
    say "torch: no local CPU wheel; asking PyTorch's CPU index, $CPU_INDEX (about 200 MB)"
    # The extra indexes of a pip config could serve PyPI's CUDA build under the same version.
    if wheel=$(PIP_EXTRA_INDEX_URL=$CPU_INDEX fetch_cpu_wheel "$work/index.log" \
        --index-url "$CPU_INDEX" --timeout "$INDEX_TIMEOUT" --retries 1); then
        say "torch: CPU build from PyTorch's CPU index, $(basename "$wheel")"
        pip_ install -q --no-deps "$wheel"
        return 0
    fi
    if unreachable "$work/index.log"; then
        why="PyTorch's CPU index ($CPU_INDEX) is unreachable"
    else
        why="PyTorch's CPU index ($CPU_INDEX) has no CPU torch for this Python and platform"
    fi
    if [ -n "$current" ]; then
        warn "$why; keeping torch $current, already installed (not the CPU build)"
        return 0
    fi
    warn "$why; installing torch from PyPI, which on Linux brings CUDA libraries" \
        "(about 3.5 GB more) that this CPU service does not use. It works; it is only bigger."
    install_pypi_torch
}

install_torch

# Pin the torch just installed, so that no dependency can swap it for another build.
echo "torch==$(torch_version)" >"$work/constraints.txt"
target=.
[ -n "$EXTRAS" ] && target=".[$EXTRAS]"
say "installing semsearch${EXTRAS:+ with extras [$EXTRAS]}"
pip_ install -q -c "$work/constraints.txt" -e "$target"

torch_now=$(torch_version)
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if is_cpu "$torch_now"; then
    build="CPU build"
    if pip_ list 2>/dev/null | grep -qi '^nvidia-'; then
        warn "nvidia-* packages are left over from an earlier install; the CPU torch does not use" \
            "them. To remove them: $VENV/bin/pip list | awk '/^nvidia-/{print \$1}' | xargs $VENV/bin/pip uninstall -y"
    fi
else
    cuda_size=$(du -shc "$site"/nvidia "$site"/triton "$site"/cuda 2>/dev/null | tail -1 | cut -f1)
    build="PyPI's build with CUDA libraries ($cuda_size); runs on CPU"
    warn "torch $torch_now is not the CPU build. To switch once PyTorch's CPU index or a CPU wheel" \
        "is reachable, run: bash scripts/install.sh $VENV${EXTRAS:+ $EXTRAS}"
fi
say "done ($VENV, torch $torch_now, $build)"
