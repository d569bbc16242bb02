"""Install hints in a base-only install: every optional feature's hint names the extra that really brings it.

The base-only venv is real: a fresh `python -m venv` holding only pyproject.toml's base dependencies (and theirs),
linked from this interpreter's site-packages, so an optional module is genuinely absent.
"""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from fume_edge.extras import FEATURES, feature_for_module

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; pyproject.toml is the truth about the extras

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

# A command that needs each extra, keyed by extra: a feature added to the table without one fails here.
COMMAND_FOR_EXTRA = {
    "train": ["train", "--epochs", "1"],
    "export": ["export", "missing.pt"],
    "mqtt": ["run", "--co2", "synthetic", "--ch4", "synthetic", "--mqtt", "mqtt://127.0.0.1/farm", "--max-frames", "1"],
    "web": ["run", "--co2", "synthetic", "--ch4", "synthetic", "--http", "127.0.0.1:0", "--max-frames", "1"],
    "bundle": ["bundle", "keygen", "signing.key"],
    "fleet": ["fleet", "--db", "postgresql://fume@127.0.0.1:1/fleet"],
}


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-")


def _base_distributions() -> set[str]:
    """pyproject.toml's base dependencies and everything they need (without extras), as installed here."""
    todo = [Requirement(r) for r in PYPROJECT["dependencies"]]
    seen: set[str] = set()
    while todo:
        requirement = todo.pop()
        name = _canonical(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        for text in metadata.requires(requirement.name) or []:
            needed = Requirement(text)
            if needed.marker is None or needed.marker.evaluate({"extra": ""}):
                todo.append(needed)
    return seen


@pytest.fixture(scope="module")
def base_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("base-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    for name in _base_distributions():
        distribution = metadata.distribution(name)
        for top in {Path(str(f)).parts[0] for f in distribution.files or []}:
            source = Path(str(distribution.locate_file(top)))
            if top not in ("..", "__pycache__") and source.exists() and not (site / top).exists():
                (site / top).symlink_to(source)
    return venv / "bin" / "python"


def _fume_edge(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "250"}
    return subprocess.run(
        [str(python), "-m", "fume_edge", *args], capture_output=True, text=True, timeout=120, env=env, cwd=cwd
    )


def test_every_feature_module_comes_with_its_extra() -> None:
    extras = PYPROJECT["optional-dependencies"]
    providers = metadata.packages_distributions()
    assert set(COMMAND_FOR_EXTRA) == {feature.extra for feature in FEATURES}
    for feature in FEATURES:
        wanted = {_canonical(Requirement(r).name) for r in extras[feature.extra]}
        for module in feature.modules:
            assert {_canonical(d) for d in providers[module]} & wanted, f"{module} is not in [{feature.extra}]"
            assert feature_for_module(f"{module}.sub") is not None
        assert f"'fume-edge[{feature.extra}]'" in feature.hint and f"'.[{feature.extra}]'" in feature.hint


def test_base_install_lacks_every_optional_module(base_python: Path) -> None:
    modules = sorted({module for feature in FEATURES for module in feature.modules})
    probe = "import importlib.util as u, sys; print([m for m in sys.argv[1:] if u.find_spec(m)])"
    done = subprocess.run([str(base_python), "-c", probe, *modules], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("feature", FEATURES, ids=lambda feature: feature.extra)
def test_each_command_names_its_extra_in_a_base_install(base_python: Path, feature, tmp_path: Path) -> None:
    done = _fume_edge(base_python, *COMMAND_FOR_EXTRA[feature.extra], cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert f"pip install 'fume-edge[{feature.extra}]'" in done.stderr, done.stderr


def test_doctor_names_every_extra_in_a_base_install(base_python: Path, tmp_path: Path) -> None:
    done = _fume_edge(base_python, "doctor", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {line.split("  ")[0].strip(): line for line in done.stdout.splitlines() if "  missing  " in line}
    for feature in FEATURES:
        assert feature.command in rows, done.stdout
    fixes = [line.split("fix: ", 1)[1].strip() for line in done.stdout.splitlines() if "fix: pip install" in line]
    for feature in FEATURES:
        assert feature.hint in fixes, done.stdout
    assert "pip install 'fume-edge' " not in done.stdout


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_tensorrt_install_hint_is_written_once() -> None:
    """TensorRT is no pip extra: the build-engine error, `doctor` and `bench` all give the one hint from extras.py."""
    from fume_edge.bench.backends import tensorrt_unavailable
    from fume_edge.bench.machine import gpu_info, jetson_info
    from fume_edge.doctor import _tensorrt
    from fume_edge.extras import tensorrt_install_hint
    from fume_edge.runtime.trt_module import installed_runtime_modules, is_jetson, tensorrt_missing_reason

    assert tensorrt_install_hint(jetson=True) in tensorrt_install_hint(jetson=False)
    assert "python3-libnvinfer" in tensorrt_install_hint(jetson=True)
    assert "pypi.nvidia.com" not in tensorrt_install_hint(jetson=True)
    assert (tensorrt_missing_reason() or "").endswith(tensorrt_install_hint(is_jetson()))
    if installed_runtime_modules():  # a lean runtime alone: doctor and bench find TensorRT and give no hint
        return
    assert _tensorrt(True, jetson=False).fix == tensorrt_install_hint(jetson=False)
    assert _tensorrt(True, jetson=True).fix == tensorrt_install_hint(jetson=True)
    on_jetson = jetson_info() is not None
    if gpu_info() is None and not on_jetson:
        found, fix = tensorrt_unavailable() or ("", None)
        assert found == "no GPU; TensorRT not installed" and (fix or "").endswith(tensorrt_install_hint(on_jetson))
