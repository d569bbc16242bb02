"""`jetson_setup.sh` against fake Jetson filesystems (`--root`): what it refuses, what it would do, what it writes,
and that a second run changes nothing. The unit it writes is checked by the real `systemd-analyze`."""

from __future__ import annotations

import os
import re
import shutil
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fume_edge.errors import FumeEdgeError
from fume_edge.pipeline.config import load_run_config

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "jetson_setup.sh"
RELEASES = {  # the first line of /etc/nv_tegra_release of each JetPack
    "5.1": "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64"
    ", DATE: Tue Aug  1 19:57:35 UTC 2023",
    "6.0": "# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic, EABI: aarch64"
    ", DATE: Mon May  6 17:34:21 UTC 2024",
    "6.2": "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64"
    ", DATE: Wed Jan  8 01:49:37 UTC 2025",
    "7.2": "# R39 (release), REVISION: 0.0, GCID: 1, BOARD: generic, EABI: aarch64, DATE: Mon Jan  1 00:00:00 UTC 2026",
}
EXPECTED = {
    "6.0": "TensorRT 8.6.2, CUDA 12.2, Python 3.10",
    "6.2": "TensorRT 10.3, CUDA 12.6, Python 3.10",
    "7.2": "TensorRT 10.16, CUDA 13.x, Python 3.12",
}


def jetson_root(folder: Path, jetpack: str) -> Path:
    (folder / "etc").mkdir(parents=True)
    (folder / "etc/nv_tegra_release").write_text(RELEASES[jetpack] + "\n")
    return folder


def setup(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def setup_here(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The script on this machine's own filesystem (not a Jetson: --force), as a dry run."""
    return subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", "--force", *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )


def with_built_engine(root: Path) -> Path:
    """A root where the device already built the default model's engine (what a run on the device leaves)."""
    engines = root / "var/lib/fume-edge/engines"
    engines.mkdir(parents=True)
    (engines / "fume_default.engine").write_bytes(b"plan")
    model = REPO / "fume_edge/assets/fume_default.onnx"
    (engines / "fume_default.engine.source-sha256").write_text(hashlib.sha256(model.read_bytes()).hexdigest() + "\n")
    return root


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_shellcheck_has_no_warnings() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck; .ci/run does)")
    result = subprocess.run(["shellcheck", "--severity=style", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout, result.stdout


def test_jetpack_5_is_refused_with_the_upgrade_path(tmp_path: Path) -> None:
    result = setup(jetson_root(tmp_path, "5.1"), "--dry-run")
    assert result.returncode == 1
    assert "JetPack 5.1.x (L4T 35.4.1) ships Python 3.8, below fume-edge's floor (3.10)" in result.stderr
    assert "flash JetPack 6.2" in result.stderr and "no apt upgrade" in result.stderr
    assert "2/9" not in result.stdout  # nothing after the detection


@pytest.mark.parametrize("jetpack", ["6.0", "6.2", "7.2"])
def test_dry_run_prints_the_versions_and_every_step_and_changes_nothing(tmp_path: Path, jetpack: str) -> None:
    root = jetson_root(tmp_path, jetpack)
    before = files(root)
    result = setup(
        root, "--dry-run", "--co2-camera", "serial:CO2-0042", "--ch4-camera", "path:platform-3610000.usb-0:2:1.0"
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"JetPack {jetpack}, {EXPECTED[jetpack]}" in out
    assert [int(n) for n in re.findall(r"^==> (\d)/9", out, re.M)] == list(range(1, 10))
    cuda_major = EXPECTED[jetpack].split("CUDA ")[1][:2]
    for action in (
        "apt-get install -y python3-venv python3-pip python3-libnvinfer nvidia-opencv v4l-utils",
        "useradd --system",
        "python3 -m venv --system-site-packages /opt/fume-edge/venv",
        "'numpy<2' onnxruntime",
        f"cuda-python>={cuda_major},<{int(cuda_major) + 1}",
        "udevadm trigger",
        "systemctl daemon-reload",
        "--int8 -o /var/lib/fume-edge/engines/fume_default.engine",
        "bench /var/lib/fume-edge/engines/fume_default.engine --check",
        "systemctl enable --now fume-edge",
    ):
        assert action in out, action
    for path in (
        "/etc/udev/rules.d/99-fume-edge-cameras.rules",
        "/etc/fume-edge/run.yaml",
        "/etc/fume-edge/mqtt.credentials",
        "/etc/systemd/system/fume-edge.service",
    ):
        assert f"would write: {path}" in out
    assert out.rstrip().endswith("dry run, nothing changed.")
    assert files(root) == before


def test_elsewhere_it_refuses_unless_forced(tmp_path: Path) -> None:
    refused = setup(tmp_path, "--dry-run")
    assert refused.returncode == 1 and "not a Jetson" in refused.stderr and "--force" in refused.stderr
    forced = setup(tmp_path, "--dry-run", "--force")
    assert forced.returncode == 0 and "JetPack 6.2 values" in forced.stdout


def test_an_unknown_jetpack_names_the_table_to_extend(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text("# R38 (release), REVISION: 2.0, GCID: 1\n")
    result = setup(tmp_path, "--dry-run")
    assert result.returncode == 1 and "L4T 38.2.0" in result.stderr and "jetpack.tsv" in result.stderr


def test_a_camera_that_is_not_an_id_is_one_error(tmp_path: Path) -> None:
    result = setup(jetson_root(tmp_path, "6.2"), "--dry-run", "--co2-camera", "usb-left")
    assert result.returncode == 1 and "--co2-camera usb-left: expected /dev/videoN, serial:SERIAL" in result.stderr


def test_two_cameras_with_one_serial_are_refused(tmp_path: Path) -> None:
    result = setup(
        jetson_root(tmp_path, "6.2"), "--dry-run", "--co2-camera", "serial:0001", "--ch4-camera", "serial:0001"
    )
    assert result.returncode == 1 and "identical serials" in result.stderr and "path:ID_PATH" in result.stderr


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    """A JetPack 6.2 filesystem after one real run of the script under --root."""
    root = with_built_engine(jetson_root(tmp_path / "root", "6.2"))
    result = setup(
        root,
        "--co2-camera",
        "serial:CO2-0042",
        "--ch4-camera",
        "csi://0",
        "--mqtt",
        "mqtts://edge:s3cr%40t@broker.farm:8883/farm",
        "--device-id",
        "barn-7",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not run (--root): useradd" in result.stdout
    return root


def test_install_writes_the_files_and_a_second_run_changes_nothing(installed: Path) -> None:
    rules = (installed / "etc/udev/rules.d/99-fume-edge-cameras.rules").read_text()
    assert (
        'SUBSYSTEM=="video4linux", ENV{ID_SERIAL_SHORT}=="CO2-0042", ATTR{index}=="0", SYMLINK+="fume-co2", '
        'GROUP="video", MODE="0660"'
    ) in rules
    assert 'SYMLINK+="fume-ch4"' not in rules  # the CSI camera is opened directly
    credentials = installed / "etc/fume-edge/mqtt.credentials"
    assert oct(credentials.stat().st_mode & 0o777) == "0o600"
    wants = installed / "etc/systemd/system/multi-user.target.wants/fume-edge.service"
    assert os.readlink(wants) == "/etc/systemd/system/fume-edge.service"
    unit = (installed / "etc/systemd/system/fume-edge.service").read_text()
    assert "PrivateTmp=no" in unit  # nvargus-daemon's socket is in /tmp
    before = files(installed)
    again = setup(
        installed,
        "--co2-camera",
        "serial:CO2-0042",
        "--ch4-camera",
        "csi://0",
        "--mqtt",
        "mqtts://edge:s3cr%40t@broker.farm:8883/farm",
    )
    assert again.returncode == 0, again.stderr
    assert "wrote:" not in again.stdout and "nothing to do, everything was already in place" in again.stdout
    assert files(installed) == before


def test_the_written_run_yaml_is_a_valid_config_for_the_service(
    installed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = installed / "etc/fume-edge/run.yaml"
    with pytest.raises(FumeEdgeError, match=r"sinks\.mqtt\.credentials: cannot read \$\{CREDENTIALS_DIRECTORY\}/mqtt"):
        load_run_config(path)  # outside the service, where systemd passes no credentials
    credentials = tmp_path / "credentials"  # what LoadCredential=mqtt:/etc/fume-edge/mqtt.credentials makes
    credentials.mkdir()
    shutil.copy(installed / "etc/fume-edge/mqtt.credentials", credentials / "mqtt")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    config, _ = load_run_config(path)
    assert (config.sources.spec("co2"), config.sources.spec("ch4")) == ("/dev/fume-co2", "csi://0")
    assert config.device_id == "barn-7" and config.pipeline.quiet
    assert config.model.path is None  # bundles reach the service; its own engine runs until the first
    assert config.model.default_path == "/var/lib/fume-edge/engines/fume_default.engine"
    assert config.sinks.sqlite.path == "/var/lib/fume-edge/alerts.db"
    assert config.sinks.mqtt.url == "mqtts://broker.farm:8883/farm"  # the login went to the credentials file
    assert config.sinks.mqtt.login() == ("edge", "s3cr@t") and "s3cr" not in path.read_text()
    assert yaml.safe_load(path.read_text())["sinks"]["mqtt"]["credentials"] == "${CREDENTIALS_DIRECTORY}/mqtt"


def test_the_unit_passes_systemd_analyze_verify(installed: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd; .ci/run does)")
    units = installed / "usr/lib/systemd/system"
    units.mkdir(parents=True)
    for unit in Path("/lib/systemd/system").glob("*.target"):  # what the unit's dependencies name
        shutil.copy(unit, units)
    executable = installed / "opt/fume-edge/venv/bin/fume-edge"  # what `pip install` puts there on the device
    executable.parent.mkdir(parents=True)
    shutil.copy(sys.executable, executable)
    (installed / "bin").mkdir()  # ExecReload's /bin/kill (procps, on every Ubuntu of JetPack)
    shutil.copy("/bin/kill", installed / "bin/kill")
    result = subprocess.run(
        [analyze, "verify", f"--root={installed}", "fume-edge.service"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and not result.stdout + result.stderr, result.stdout + result.stderr
    security = subprocess.run(
        [analyze, "security", "--offline=yes", f"--root={installed}", "fume-edge.service"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    exposure = re.search(r"Overall exposure level for fume-edge.service: ([0-9.]+)", security.stdout)
    assert exposure is not None, security.stdout + security.stderr
    assert float(exposure.group(1)) <= 2.5, security.stdout  # 1.9 with a CSI camera; without hardening 9.2


def test_the_venv_requirements_are_pyprojects_device_extras_without_pip_opencv() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {
        re.split(r"[<>=]", d)[0]
        for d in project["dependencies"]
        + project["optional-dependencies"]["mqtt"]
        + project["optional-dependencies"]["web"]
        + project["optional-dependencies"]["trt"]
    }
    line = next(text for text in SCRIPT.read_text().splitlines() if text.startswith("requirements=("))
    listed = {re.split(r"[<>=]", item.strip('"'))[0] for item in line[len("requirements=(") : -1].split()}
    listed = {item for item in listed if not item.startswith("$")} | {"numpy"}  # numpy: the JetPack pin
    assert listed == wanted - {"opencv-python-headless", "cuda-python"}  # cuda-python: $CUDA_PYTHON, by CUDA major


def test_no_service_leaves_the_unit_disabled(tmp_path: Path) -> None:
    root = jetson_root(tmp_path, "6.2")
    result = setup(root, "--no-service")
    assert result.returncode == 0, result.stderr
    assert "--no-service: not enabled" in result.stdout and "systemctl enable" not in result.stdout
    assert (root / "etc/systemd/system/fume-edge.service").is_file()
    assert not (root / "etc/systemd/system/multi-user.target.wants").exists()


def test_a_root_that_does_not_exist_is_one_line(tmp_path: Path) -> None:
    result = setup(tmp_path / "missing", "--dry-run")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"jetson_setup: --root {tmp_path / 'missing'}: no such folder (create it "
        f"first: mkdir -p {tmp_path / 'missing'})"
    ]


def test_a_camera_node_that_is_not_there_is_one_line(tmp_path: Path) -> None:
    result = setup_here("--co2-camera", "/dev/video-fume-edge-test", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "jetson_setup: --co2-camera /dev/video-fume-edge-test: no such camera (v4l2-ctl --list-devices)"
    ]


def test_not_a_jetson_is_said_once_and_force_is_in_the_help(tmp_path: Path) -> None:
    forced = setup(tmp_path, "--dry-run", "--force")
    assert forced.returncode == 0 and forced.stdout.count("not a Jetson") == 1, forced.stdout
    usage = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^--force .*not a Jetson", usage, re.M), usage


def test_printed_commands_read_back_in_a_shell_as_the_same_words(tmp_path: Path) -> None:
    model = tmp_path / "my model's copy.onnx"
    shutil.copy(REPO / "fume_edge/assets/fume_default.onnx", model)
    result = setup(jetson_root(tmp_path / "root", "6.2"), "--dry-run", "--model", str(model))
    assert result.returncode == 0, result.stderr
    printed = [
        line.split(": ", 1)[1]
        for line in result.stdout.splitlines()
        if line.startswith(("  would run: ", "  would check: "))
    ]
    words = []
    for command in printed:  # what pasting it into a shell passes to the program
        pasted = subprocess.run(
            ["bash", "-c", f"set -- {command}; printf '%s\\0' \"$@\""], capture_output=True, text=True, cwd=tmp_path
        )
        assert pasted.returncode == 0 and not pasted.stderr, f"{command}: {pasted.stderr}"
        words.append(pasted.stdout.split("\0")[:-1])
    assert not (tmp_path / "2").exists()  # an unquoted numpy<2 would read a file named 2
    pip = next(w for w in words if "--upgrade" in w)
    assert "numpy<2" in pip and "cuda-python>=12,<13" in pip
    build = next(w for w in words if "build-engine" in w)
    assert build[2] == str(model) and build[-1] == "/var/lib/fume-edge/engines/my model's copy.engine"


def test_root_without_the_engine_does_not_enable_the_service(tmp_path: Path) -> None:
    root = jetson_root(tmp_path, "6.2")
    result = setup(root)
    assert result.returncode == 0, result.stderr
    assert not (root / "etc/systemd/system/multi-user.target.wants").exists()
    engine = "/var/lib/fume-edge/engines/fume_default.engine"
    assert f"not enabled: its engine {engine} is built on the device" in result.stdout
    assert "journalctl" not in result.stdout
    assert "Next, on the device: sudo ./jetson_setup.sh" in result.stdout.splitlines()[-1]


def test_the_units_documentation_is_installed_not_in_the_clone(installed: Path) -> None:
    unit = (installed / "etc/systemd/system/fume-edge.service").read_text()
    assert "Documentation=file:///usr/share/doc/fume-edge/README.md" in unit
    assert str(REPO) not in unit
    assert (installed / "usr/share/doc/fume-edge/README.md").read_text() == (REPO / "README.md").read_text()
    for page in (REPO / "docs").glob("*.md"):  # the README's links to docs/ work where it is installed
        assert (installed / "usr/share/doc/fume-edge/docs" / page.name).read_text() == page.read_text()


def test_several_stations_get_their_own_links_and_a_stations_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = with_built_engine(jetson_root(tmp_path / "root", "6.2"))
    result = setup(
        root,
        "--station",
        "pen-1",
        "--co2-camera",
        "serial:CO2-1",
        "--ch4-camera",
        "serial:CH4-1",
        "--station",
        "pen-2",
        "--co2-camera",
        "rtsp://10.0.0.12/co2",
        "--ch4-camera",
        "path:platform-3610000.usb-0:2:1.0",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rules = (root / "etc/udev/rules.d/99-fume-edge-cameras.rules").read_text()
    for match, link in (
        ('ENV{ID_SERIAL_SHORT}=="CO2-1"', "fume-co2-pen-1"),
        ('ENV{ID_SERIAL_SHORT}=="CH4-1"', "fume-ch4-pen-1"),
        ('ENV{ID_PATH}=="platform-3610000.usb-0:2:1.0"', "fume-ch4-pen-2"),
    ):
        assert f'SUBSYSTEM=="video4linux", {match}, ATTR{{index}}=="0", SYMLINK+="{link}", ' in rules, link
    assert 'SYMLINK+="fume-co2"' not in rules and "fume-co2-pen-2" not in rules  # RTSP: opened directly
    credentials = tmp_path / "credentials"  # as systemd passes them to the service
    credentials.mkdir()
    shutil.copy(root / "etc/fume-edge/mqtt.credentials", credentials / "mqtt")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    config, _ = load_run_config(root / "etc/fume-edge/run.yaml")
    assert [(s.id, s.co2, s.ch4) for s in config.run_stations()] == [
        ("pen-1", "/dev/fume-co2-pen-1", "/dev/fume-ch4-pen-1"),
        ("pen-2", "rtsp://10.0.0.12/co2", "/dev/fume-ch4-pen-2"),
    ]
    before = files(root)
    again = setup(
        root,
        "--station",
        "pen-1",
        "--co2-camera",
        "serial:CO2-1",
        "--ch4-camera",
        "serial:CH4-1",
        "--station",
        "pen-2",
        "--co2-camera",
        "rtsp://10.0.0.12/co2",
        "--ch4-camera",
        "path:platform-3610000.usb-0:2:1.0",
    )
    assert again.returncode == 0 and "nothing to do" in again.stdout and files(root) == before


def test_repeated_pairs_without_ids_are_numbered(tmp_path: Path) -> None:
    result = setup(
        jetson_root(tmp_path, "6.2"),
        "--dry-run",
        "--co2-camera",
        "serial:A",
        "--ch4-camera",
        "serial:B",
        "--co2-camera",
        "serial:C",
        "--ch4-camera",
        "serial:D",
    )
    assert result.returncode == 0, result.stderr
    for line in (
        "co2-1: serial:A -> /dev/fume-co2-1",
        "ch4-1: serial:B -> /dev/fume-ch4-1",
        "co2-2: serial:C -> /dev/fume-co2-2",
        "ch4-2: serial:D -> /dev/fume-ch4-2",
    ):
        assert line in result.stdout, result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (("--station", "pen/1", "--co2-camera", "serial:A"), "--station pen/1: not a valid id"),
        (
            ("--station", "p", "--co2-camera", "serial:A", "--station", "p", "--co2-camera", "serial:B"),
            "--station p: given twice",
        ),
        (
            (
                "--co2-camera",
                "serial:A",
                "--ch4-camera",
                "serial:B",
                "--co2-camera",
                "serial:C",
                "--ch4-camera",
                "serial:A",
            ),
            'two cameras match ENV{ID_SERIAL_SHORT}=="A"',
        ),
    ],
)
def test_bad_stations_are_one_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = setup(jetson_root(tmp_path, "6.2"), "--dry-run", *args)
    assert result.returncode == 1 and result.stderr.startswith("jetson_setup: " + message), result.stderr
    assert len(result.stderr.splitlines()) == 1


def setup_asked(root: Path, answers: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    """The script with --ask, its answers piped on stdin, one a line."""
    return subprocess.run(
        ["bash", str(SCRIPT), "--root", str(root), "--ask", *args],
        capture_output=True,
        text=True,
        timeout=120,
        input="".join(f"{answer}\n" for answer in answers),
    )


def shown_run_yaml(out: str) -> dict[str, object]:
    """The run.yaml a dry run shows it would write."""
    return yaml.safe_load("\n".join(line[4:] for line in out.splitlines() if line.startswith("  | ")))


def test_asked_stations_are_checked_and_installed_as_the_options_would(tmp_path: Path) -> None:
    root = jetson_root(tmp_path, "6.2")
    answers = [
        "pen/1",  # not topic-safe: said, and asked again
        "pen-1",
        "serial:CO2-1",
        "usb-left",  # not a camera ID: said, and asked again
        "serial:CH4-1",
        "y",
        "pen-1",  # taken by the first station
        "",  # numbered: 2
        "rtsp://10.0.0.12/co2",
        "path:platform-3610000.usb-0:2:1.0",
        "",  # no third station
    ]
    asked = setup_asked(root, answers, "--dry-run")
    assert asked.returncode == 0, asked.stdout + asked.stderr
    out = asked.stdout
    rule = "use 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit)"
    assert f"  station 1 id (empty: 1): pen/1\n  pen/1: not a valid id; {rule}\n  station 1 id (empty: 1): pen-1" in out
    assert "  station pen-1 CH4 camera: usb-left\n  --ch4-camera usb-left: expected /dev/videoN" in out
    assert "  pen-1: given twice; give each station its own id\n  station 2 id (empty: 2): \n" in out
    summary = out.index(
        "  to install (run.yaml stations:):\n"
        "    station pen-1: CO2 serial:CO2-1 -> /dev/fume-co2-pen-1, CH4 serial:CH4-1 -> /dev/fume-ch4-pen-1\n"
        "    station 2: CO2 rtsp://10.0.0.12/co2 (opened directly), CH4 path:platform-3610000.usb-0:2:1.0 -> "
        "/dev/fume-ch4-2\n"
    )
    assert summary < out.index("==> 2/9")  # shown before anything is done
    for line in (
        "co2-pen-1: serial:CO2-1 -> /dev/fume-co2-pen-1",
        "ch4-pen-1: serial:CH4-1 -> /dev/fume-ch4-pen-1",
        "co2-2: rtsp://10.0.0.12/co2 (opened directly, no udev rule)",
        "ch4-2: path:platform-3610000.usb-0:2:1.0 -> /dev/fume-ch4-2",
    ):
        assert line in out, line
    assert shown_run_yaml(out)["stations"] == [
        {"id": "pen-1", "co2": "/dev/fume-co2-pen-1", "ch4": "/dev/fume-ch4-pen-1"},
        {"id": "2", "co2": "rtsp://10.0.0.12/co2", "ch4": "/dev/fume-ch4-2"},
    ]
    given = setup(
        root,
        "--dry-run",
        *("--station", "pen-1", "--co2-camera", "serial:CO2-1", "--ch4-camera", "serial:CH4-1"),
        *("--co2-camera", "rtsp://10.0.0.12/co2", "--ch4-camera", "path:platform-3610000.usb-0:2:1.0"),
    )
    assert given.returncode == 0, given.stderr
    assert out.split("==> 2/9")[1] == given.stdout.split("==> 2/9")[1]  # the same install from here on


def test_one_unnamed_asked_station_keeps_the_one_station_names(tmp_path: Path) -> None:
    asked = setup_asked(jetson_root(tmp_path, "6.2"), ["", "serial:A", "csi://0", "n"], "--dry-run")
    assert asked.returncode == 0, asked.stdout + asked.stderr
    summary = "the station: CO2 serial:A -> /dev/fume-co2, CH4 csi://0 (opened directly)"
    assert summary in asked.stdout
    assert shown_run_yaml(asked.stdout)["sources"] == {"co2": {"source": "/dev/fume-co2"}, "ch4": {"source": "csi://0"}}


def test_declining_the_asked_install_changes_nothing(tmp_path: Path) -> None:
    root = jetson_root(tmp_path, "6.2")
    before = files(root)
    declined = setup_asked(root, ["pen-1", "serial:A", "serial:B", "n", "n"])
    assert declined.returncode == 0, declined.stderr
    assert declined.stdout.rstrip().endswith("jetson_setup: stopped before any change.")
    assert "==> 2/9" not in declined.stdout and files(root) == before


@pytest.mark.parametrize(
    "answers, args, message",
    [
        (["pen-1", "serial:A"], (), 'the input ended before the answer to "station pen-1 CH4 camera"'),
        ([], ("--co2-camera", "serial:A"), "--ask asks for the cameras: give them either as answers or as options"),
    ],
)
def test_asking_without_answers_is_one_line(
    tmp_path: Path, answers: list[str], args: tuple[str, ...], message: str
) -> None:
    result = setup_asked(jetson_root(tmp_path, "6.2"), answers, "--dry-run", *args)
    assert result.returncode == 1 and result.stderr.startswith("jetson_setup: " + message), result.stderr
    assert len(result.stderr.splitlines()) == 1
