"""Where a model runs: `--device auto|cpu|cuda`, resolved without pulling CUDA onto a CPU box."""

from __future__ import annotations

import os
from pathlib import Path

from storage import SemsearchError

AUTO = "auto"
CPU = "cpu"
CUDA = "cuda"
DEVICE_CHOICES = (AUTO, CPU, CUDA)
# The NVIDIA driver creates these; without them no CUDA device can exist, so `auto` settles on
# the CPU without importing torch (a second or two on every CLI start of an ONNX backend).
_NVIDIA_MARKERS = (Path("/proc/driver/nvidia/version"), Path("/dev/nvidiactl"))


class UnknownDevice(SemsearchError):
    code = "unknown_device"
    status = 400


class DeviceUnavailable(SemsearchError):
    code = "device_unavailable"
    status = 400


def check_device(name: str) -> str:
    """`name` lower-cased if it is one of DEVICE_CHOICES.

    Raises:
        UnknownDevice: it is not.
    """
    value = name.strip().lower()
    if value not in DEVICE_CHOICES:
        raise UnknownDevice(f"unknown device '{name}'; use one of: {', '.join(DEVICE_CHOICES)}")
    return value


def resolve_device(name: str) -> str:
    """The concrete device for `name`: `auto` is cuda where torch sees a GPU, else cpu.

    Raises:
        UnknownDevice: `name` is not one of DEVICE_CHOICES.
        DeviceUnavailable: cuda was asked for and torch sees no GPU.
    """
    value = check_device(name)
    if value == CPU:
        return CPU
    available, why = cuda_status()
    if value == AUTO:
        return CUDA if available else CPU
    if not available:
        raise DeviceUnavailable(f"--device cuda: {why}; use --device cpu (or auto)")
    return CUDA


def cuda_status() -> tuple[bool, str]:
    """Whether torch can use a CUDA GPU here, and if not, why (for the error message)."""
    if not any(marker.exists() for marker in _NVIDIA_MARKERS):
        return False, "no NVIDIA driver on this machine"
    import torch  # only where a driver exists: torch's CUDA probe is slow

    if torch.version.cuda is None:
        return False, f"the installed torch {torch.__version__} is a CPU-only build"
    if not torch.cuda.is_available():
        return False, "torch sees no usable CUDA GPU (driver or CUDA_VISIBLE_DEVICES)"
    return True, ""


def default_threads() -> int:
    """CPUs this process may run on (its affinity mask, which containers narrow), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
