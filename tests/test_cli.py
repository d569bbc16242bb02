"""CLI behaviour a device user meets: the runtime needs no torch, a missing extra is one line naming it."""

from __future__ import annotations

import subprocess
import sys

BLOCK_AND_RUN = (
    "import sys; sys.modules.update({{m: None for m in {blocked!r}}}); sys.argv = {argv!r}; "
    "from fume_edge.cli import main; main()"
)


def _run_without(blocked: list[str], *args: str) -> subprocess.CompletedProcess:
    """Run the CLI in a process where the `blocked` packages cannot be imported (as on a device install)."""
    code = BLOCK_AND_RUN.format(blocked=blocked, argv=["fume-edge", *args])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_info_on_the_default_onnx_needs_no_torch_or_onnx() -> None:
    done = _run_without(["torch", "onnx", "onnxsim"], "info")
    assert done.returncode == 0, done.stderr
    assert "1,656,236" in done.stdout and "fume_default.onnx" in done.stdout


def test_missing_extra_is_one_line_naming_it(tmp_path) -> None:
    done = _run_without(["onnx"], "quantize", str(tmp_path / "m.onnx"), "--calib", str(tmp_path))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0
    assert "pip install 'fume-edge[export]'" in done.stderr
    assert "pip install -e '.[export]'" in done.stderr  # the form that works in a clone


def test_version() -> None:
    done = subprocess.run([sys.executable, "-m", "fume_edge", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("fume-edge ")


def test_files_that_are_not_utf8_are_one_line_with_the_byte_offset(tmp_path) -> None:
    """Latin-1 text (a spreadsheet's 'ANSI' export): every command that reads YAML or CSV names file and byte."""
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_bytes(b"# r\xe9glages\nsinks: {}\n")
    csv_file = tmp_path / "annotations.csv"
    csv_file.write_bytes(b"image,mask,gas,ph,animal_id,session_id,timestamp\nvache_\xe9t\xe9.png,m.png,co2,6.1,a,s,1\n")
    for args, path, offset in (
        (["run", "--co2", "synthetic", "--ch4", "synthetic", "--config", str(yaml_file)], yaml_file, 3),
        (["train", "--config", str(yaml_file)], yaml_file, 3),
        (["synth", str(tmp_path / "out"), "--config", str(yaml_file)], yaml_file, 3),
        (["pair", str(csv_file), "-o", str(tmp_path / "paired")], csv_file, 55),
        (["calibrate", "--data", str(csv_file), "-o", str(tmp_path / "cal")], csv_file, 55),
    ):
        done = _run_without([], *args)
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0, done.stderr
        assert f"{path}: not UTF-8 text (byte offset {offset}" in " ".join(done.stderr.split()), done.stderr
