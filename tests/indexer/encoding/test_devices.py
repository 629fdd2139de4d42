"""`--device auto|cpu|cuda`: resolved without torch on a CPU box, clear errors where no GPU is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from indexer.encoding.backends import load_encoder
from indexer.encoding.devices import (
    DeviceUnavailable,
    UnknownDevice,
    check_device,
    cuda_status,
    resolve_device,
)
from search_api.cli import cli

NO_GPU = not cuda_status()[0]
needs_no_gpu = pytest.mark.skipif(not NO_GPU, reason="this machine has a usable GPU")


def test_names_are_checked() -> None:
    assert check_device(" CPU ") == "cpu"
    with pytest.raises(UnknownDevice, match="unknown device 'tpu'; use one of: auto, cpu, cuda"):
        resolve_device("tpu")
    assert resolve_device("cpu") == "cpu"


@needs_no_gpu
def test_auto_is_cpu_and_cuda_is_a_clear_error() -> None:
    assert resolve_device("auto") == "cpu"
    with pytest.raises(DeviceUnavailable, match=r"--device cuda: .*; use --device cpu"):
        resolve_device("cuda")
    with pytest.raises(DeviceUnavailable):
        load_encoder("all-MiniLM-L6-v2", device="cuda")


@pytest.mark.skipif(Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists(),
                    reason="an NVIDIA driver is present")
def test_auto_on_a_cpu_box_never_imports_torch() -> None:
    code = ("import sys; from indexer.encoding.devices import resolve_device; "
            "print(resolve_device('auto'), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["cpu", "False"]


def test_cpu_device_loads_the_model_on_the_cpu() -> None:
    encoder = load_encoder("all-MiniLM-L6-v2", backend="torch", device="cpu")
    assert getattr(encoder, "device", None) == "cpu" and getattr(encoder, "backend", "") == "torch"
    vectors = encoder.encode(["a cat sat on the mat", "a kitten sat on a rug", "stock prices fell"])
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2])


@needs_no_gpu
@pytest.mark.parametrize("args", [
    ["index", "{file}", "-c", "docs", "--device", "cuda"],
    ["faq", "import", "{file}", "--name", "f", "--device", "cuda"],
])
def test_cli_cuda_without_gpu_exits_with_a_message(tmp_path: Path, args: list[str]) -> None:
    file = tmp_path / "in.jsonl"
    file.write_text('{"id": "1", "text": "hello", "intent": "a", "question": "hi", '
                    '"answer": "A"}\n', encoding="utf-8")
    result = CliRunner().invoke(cli, [a.replace("{file}", str(file)) for a in args]
                                + ["--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 1, result.output
    assert "--device cuda:" in result.output and "--device cpu" in result.output
    assert not (tmp_path / "data" / "docs").exists() and not (tmp_path / "data" / "f").exists()


def test_bad_device_flag_and_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "in.jsonl"
    file.write_text('{"id": "1", "text": "hello"}\n', encoding="utf-8")
    runner = CliRunner()
    flag = runner.invoke(cli, ["index", str(file), "-c", "d", "--device", "tpu"])
    assert flag.exit_code == 2 and "'tpu' is not one of" in flag.output
    monkeypatch.setenv("SEMSEARCH_DEVICE", "tpu")
    env = runner.invoke(cli, ["index", str(file), "-c", "d", "--data-dir", str(tmp_path)])
    assert env.exit_code == 1 and "SEMSEARCH_DEVICE" in env.output and "tpu" in env.output
