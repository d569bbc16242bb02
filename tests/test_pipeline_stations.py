"""Several stations on one device: each station's alerts are its own, a hung source stalls nobody else, the batch
is shared fairly, and a SIGTERM ends every station's open alerts."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from pipeline_support import (
    FRAME_SIZE,
    MODEL_SIZE,
    UPSTREAM,
    ScriptedCamera,
    noise_frames,
    run_config,
    write_run_yaml,
)
from rich.console import Console
from waiting import eventually

from fume_edge.alerts.event import ACIDOSIS_RISK, CAMERA_DEGRADED, CAMERA_OFFLINE, START
from fume_edge.alerts.service import AlertService
from fume_edge.alerts.store import AlertStore
from fume_edge.assets import default_model_path
from fume_edge.config import replace
from fume_edge.data.config import Outage, Segment, load_data_config
from fume_edge.data.synth_video import write_paired_videos
from fume_edge.errors import FumeEdgeError
from fume_edge.pipeline.advice import batch_notes
from fume_edge.pipeline.capture import CameraStream, FrameHub
from fume_edge.pipeline.config import load_run_config
from fume_edge.pipeline.loop import Pipeline
from fume_edge.pipeline.prepare import ModelInputs
from fume_edge.pipeline.run import RunOptions, run
from fume_edge.pipeline.sources import SourceLost
from fume_edge.pipeline.station import Station
from fume_edge.runtime.base import load_backend

CAMS = ("co2", "ch4")
FUME_EDGE = [sys.executable, "-c", "import sys; from fume_edge.cli import main; sys.argv[0] = 'fume-edge'; main()"]


def _videos(folder: Path, segments: list[tuple[float, float]], outage: Outage | None = None) -> dict[str, Path]:
    data = load_data_config()
    video = replace(
        data.synthetic.video,
        fps=10.0,
        segments=tuple(Segment(ph=ph, seconds=s) for ph, s in segments),
        clock_offset_s=0.0,
        jitter_s=0.0,
        drop_rate=0.0,
        outage=outage,
    )
    synthetic = replace(data.synthetic, width=FRAME_SIZE[0], height=FRAME_SIZE[1], video=video)
    return write_paired_videos(folder, synthetic, data.ph_classes, seed=5)


def test_three_stations_each_get_exactly_their_own_alerts(tmp_path: Path) -> None:
    """One drifts to Acidotic, one stays Healthy, one loses its CH4 camera; the bundled model reads them all."""
    acid = _videos(tmp_path / "acid", [(6.4, 0.8), (5.2, 2.2)])
    healthy = _videos(tmp_path / "ok", [(6.4, 3.0)])
    dead = _videos(tmp_path / "dead", [(6.4, 3.0)], Outage(gas="ch4", start_s=1.0, seconds=2.0))
    config = write_run_yaml(
        tmp_path / "run.yaml",
        f"""
stations:
  - {{id: pen-acid, co2: {acid["co2"]}, ch4: {acid["ch4"]}}}
  - {{id: pen-ok, co2: {healthy["co2"]}, ch4: {healthy["ch4"]}}}
  - {{id: pen-dead, co2: {dead["co2"]}, ch4: {dead["ch4"]}}}
sources: {{pacing: fast}}
sync: {{silent_after_s: 0.5}}
alerts:
  smoothing_s: 0.3
  acidosis_risk: {{start_after_s: 0.5, end_after_s: 0.5}}
  transitional_risk: {{start_after_s: 0.5, end_after_s: 0.5}}
""",
    )
    result = run(
        RunOptions(
            model=default_model_path(),
            config=config,
            device="cpu",
            alerts=tmp_path / "alerts.db",
            jsonl=tmp_path / "alerts.jsonl",
        ),
        Console(file=(shown := io.StringIO()), force_terminal=True, color_system=None, width=200),
    )
    assert result.reason == "completed" and result.lost == 0
    with AlertStore(tmp_path / "alerts.db", readonly=True) as store:
        events = store.events()
    starts = {(e.station, e.type) for e in events if e.state == START}
    assert starts == {("pen-acid", ACIDOSIS_RISK), ("pen-dead", CAMERA_DEGRADED)}
    lines = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [line["station"] for line in lines] == [e.station for e in events]
    per = result.stats["stations"]
    assert {sid: s["degraded"] > 0 for sid, s in per.items()} == {"pen-acid": False, "pen-ok": False, "pen-dead": True}
    assert all(s["inferences"] == s["pairs"] + s["singles"] for s in per.values())  # fast pacing: every pair
    # What the terminal showed says whose each line is: the event lines, the live panel's row per station (its
    # own pH class and open alerts), and the summary's cameras by station (ids in their own case).
    output = shown.getvalue()
    assert {line.split(" station=")[1].split()[0] for line in output.splitlines() if " START " in line} == {
        "pen-acid",
        "pen-dead",
    }
    panel = output[output.rindex("pH (smoothed)") :]
    rows = {
        line.split()[1]: line
        for line in panel.splitlines()
        if line.split()[1:2] in (["pen-acid"], ["pen-ok"], ["pen-dead"])
    }
    assert set(rows) == {"pen-acid", "pen-ok", "pen-dead"} and "Healthy" in rows["pen-ok"]
    assert "Acidotic" in rows["pen-acid"]
    assert all(f"{sid}/CO2" in output and f"{sid}/CH4" in output for sid in rows)
    # the bundled model takes one pair a call: the run says the stations take turns, and which export does better
    assert "3 stations on a model of batch 1" in output and "--batch 3 --dynamic-batch" in output


@pytest.mark.parametrize(
    ("capacity", "dynamic", "stations", "says"),
    [
        (1, False, 1, None),
        (None, False, 4, None),  # eager PyTorch: any batch
        (3, False, 3, None),
        (3, True, 2, None),  # a dynamic batch runs the 2 rows it has
        (1, False, 3, "3 stations on a model of batch 1: a call takes 1 of their pairs"),
        (2, True, 5, "5 stations on a model of batch 2"),
        (4, False, 2, "static batch 4 is more than the 2 stations: every call runs 2 padded rows"),
    ],
)
def test_a_batch_that_does_not_fit_the_stations_is_one_note_with_the_export_that_does(
    capacity: int | None, dynamic: bool, stations: int, says: str | None
) -> None:
    notes = batch_notes(capacity, dynamic, stations, Path("m.onnx"))
    assert notes == [] if says is None else (len(notes) == 1 and says in notes[0] and "--dynamic-batch" in notes[0])


class HungCamera:
    """A live source whose read never returns: it opens a FIFO nobody writes (a driver stuck in a call)."""

    live = True
    fps: float | None = 20.0

    def __init__(self, name: str, fifo: Path) -> None:
        self.name, self.fifo = name, fifo

    def read(self) -> tuple[np.ndarray, float] | None:
        with open(self.fifo, "rb") as handle:  # blocks until a writer opens it: never, until the test ends
            handle.read()
        raise SourceLost(f"{self.name}: closed")

    def close(self) -> None:
        pass


@pytest.fixture(scope="module", params=[False, True], ids=["static", "dynamic"])
def batch3_onnx(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model exported at batch 3: static (a short tick pads) and `--dynamic-batch` (it runs 1 to 3 rows)."""
    from fume_edge.deploy.onnx.onnx_export import export_onnx
    from fume_edge.deploy.upstream_import import import_research_checkpoint
    from fume_edge.model.checkpoint import save_checkpoint

    folder = tmp_path_factory.mktemp("batch3")
    checkpoint = save_checkpoint(import_research_checkpoint(UPSTREAM).checkpoint, folder / "fume.pt")
    return export_onnx(checkpoint, folder / "fume_b3.onnx", size=MODEL_SIZE, batch=3, dynamic_batch=request.param).path


def _no_reopen() -> object:
    raise FumeEdgeError("gone")


def test_a_hung_station_stalls_nobody_and_the_batch_is_shared_fairly(tmp_path: Path, batch3_onnx: Path) -> None:
    fifo = tmp_path / "nobody-writes"
    os.mkfifo(fifo)
    config = run_config(tmp_path)
    doorbell = threading.Event()
    backend = load_backend(batch3_onnx, device="cpu")
    dynamic = backend.contract.dynamic_batch
    stations = []
    for k, sid in enumerate(("pen-1", "pen-2", "hung")):
        hub = FrameHub(CAMS, capacity=4, lossless=False, doorbell=doorbell)
        readers = (
            {gas: HungCamera(f"{sid}-{gas}", fifo) for gas in CAMS}
            if sid == "hung"
            else {gas: ScriptedCamera(gas, noise_frames(seed=2 * k + j), fps=20.0) for j, gas in enumerate(CAMS)}
        )
        streams = {
            gas: CameraStream(
                gas,
                reader,
                reopen=_no_reopen,
                hub=hub,
                paced=False,  # type: ignore[arg-type]
                time_offset_s=0.0,
                reconnect_s=(0.2, 0.2),
                stop_timeout_s=0.2,
            )
            for gas, reader in readers.items()
        }
        inputs = ModelInputs(CAMS, dict.fromkeys(CAMS, backend.contract.preprocessing))
        stations.append(Station(sid, streams, hub, inputs, tolerance_s=0.025, silent_after_s=0.4))
    service = AlertService(
        config.alerts, config.sinks, device_id="test", stations={s.id: config.alerts for s in stations}
    )
    pipeline = Pipeline(stations, backend, service, tick_s=0.05, stats_interval_s=60.0, doorbell=doorbell)
    service.start()
    try:
        pipeline.run(lambda: False, duration_s=2.0)
    finally:
        service.close(pipeline.stats(), "completed")
        backend.close()
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # lets the hung reads return
        os.close(fd)
    stats = pipeline.stats()
    per = stats["stations"]
    assert per["hung"]["inferences"] == 0
    good = [per[sid]["inferences"] for sid in ("pen-1", "pen-2")]
    assert min(good) >= 0.8 * max(good) and min(good) > 10
    for sid in ("pen-1", "pen-2"):  # the loop kept up with both: every pair inferred or skipped for a newer one
        assert per[sid]["inferences"] + per[sid]["stale"] == per[sid]["pairs"] + per[sid]["singles"]
    assert stats["batch"] == 3 and stats["calls"] < stats["inferences"] + stats["padded"]
    if dynamic:  # every tick is short of the hung station's pair: run as 1 or 2 rows, nothing padded
        assert stats["padded"] == 0 and stats["calls"] * 2 >= stats["inferences"]
    else:
        assert stats["calls"] * 3 == stats["inferences"] + stats["padded"]  # every call ran the whole static batch
        assert stats["padded"] >= stats["calls"]  # the hung station's row at least, in every call
    with AlertStore(config.sinks.sqlite.path, readonly=True) as store:
        starts = {(e.station, e.type) for e in store.events() if e.state == START}
    assert starts == {("hung", CAMERA_OFFLINE)}  # only the hung station's cameras are out


def test_station_ids_and_overrides_are_checked_with_the_key_named(tmp_path: Path) -> None:
    cases = {
        "stations: [{id: pen/1, co2: a, ch4: b}]": "run.yaml:1: stations[0].id: 'pen/1' is not a valid id",
        "stations: [{id: p, co2: a, ch4: b}, {id: p, co2: c, ch4: d}]": (
            "run.yaml:1: stations: station id 'p' is used twice (stations[1])"
        ),
        "stations: [{id: p, co2: a, ch4: b, alerts: {acidosis_risk: {start_at: 2}}}]": (
            "run.yaml:1: stations: [0].alerts.acidosis_risk.start_at: must be <= 1 (got 2)"
        ),
        "stations: [{id: p, co2: a, ch4: b, camera: c}]": "run.yaml:1: stations[0].camera: unknown key",
    }
    for text, expected in cases.items():
        path = write_run_yaml(tmp_path / "run.yaml", text)
        with pytest.raises(FumeEdgeError) as error:
            load_run_config(path)
        assert str(error.value).startswith(expected.replace("run.yaml", str(path))), str(error.value)
    config, _ = load_run_config(
        write_run_yaml(
            tmp_path / "run.yaml",
            """
stations: [{id: p, co2: a, ch4: b, alerts: {acidosis_risk: {start_at: 0.7}}}, {id: q, co2: c, ch4: d}]""",
        )
    )
    assert config.policy_for(config.stations[0]).acidosis_risk.start_at == 0.7
    assert config.policy_for(config.stations[1]) == config.alerts


# Every station's CH4 camera is out from the start: each has `camera_degraded` open when the run is stopped.
THREE_YAML = f"""
stations:
  - {{id: pen-1, co2: synthetic, ch4: synthetic}}
  - {{id: pen-2, co2: synthetic, ch4: synthetic}}
  - {{id: pen-3, co2: synthetic, ch4: synthetic}}
sources:
  co2: {{width: {FRAME_SIZE[0]}, height: {FRAME_SIZE[1]}}}
  ch4: {{width: {FRAME_SIZE[0]}, height: {FRAME_SIZE[1]}}}
  synthetic:
    fps: 10.0
    segments: [{{ph: 6.4, seconds: 60.0}}]
    outage: {{gas: ch4, start_s: 0.0, seconds: 60.0}}
sync: {{silent_after_s: 0.5}}
"""


def test_sigterm_with_three_stations_ends_every_open_alert_as_interrupted(tmp_path: Path, small_onnx: Path) -> None:
    config = write_run_yaml(tmp_path / "run.yaml", THREE_YAML)
    db = tmp_path / "alerts.db"
    proc = subprocess.Popen(
        [
            *FUME_EDGE,
            "run",
            "--model",
            str(small_onnx),
            "--config",
            str(config),
            "--alerts",
            str(db),
            "--jsonl",
            str(tmp_path / "alerts.jsonl"),
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def started() -> set[str]:
        """Stations with an alert started so far; a run that exits early fails at once with its stderr."""
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        if db.exists():
            with (
                sqlite3.connect(f"file:{db}?mode=ro", uri=True) as read,
                contextlib.suppress(sqlite3.OperationalError),
            ):  # schema not created yet
                return {
                    row[0]
                    for row in read.execute(
                        "SELECT json_extract(payload, '$.station') FROM events WHERE state = 'start'"
                    )
                }
        return set()

    eventually(
        lambda: started() == {"pen-1", "pen-2", "pen-3"}, "an alert started at each station", timeout_s=60, every_s=0.2
    )
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    with AlertStore(db, readonly=True) as store:
        events = store.events()
    by_alert: dict[str, list[tuple[str, str, str, str | None]]] = {}
    for e in events:
        by_alert.setdefault(e.id, []).append((e.station, e.type, e.state, e.reason))
    # Each station's CH4 camera is out for the whole run, so each has a camera alert open at SIGTERM (degraded, or
    # offline while a loaded machine also starves its CO2 camera past silent_after_s: the two supersede each other).
    # Whatever was open ends as interrupted, each station's last event; nothing is left open.
    assert {v[0][0] for v in by_alert.values()} == {"pen-1", "pen-2", "pen-3"}
    assert all(v[0][2] == START and v[-1][2] == "end" for v in by_alert.values())
    last = {e.station: e for e in events}
    assert all((e.state, e.reason) == ("end", "interrupted") for e in last.values())
    interrupted = {(e.station, e.type) for e in events if e.reason == "interrupted"}
    assert {station for station, kind in interrupted if kind in (CAMERA_DEGRADED, CAMERA_OFFLINE)} == set(last)
    jsonl = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [e["event_id"] for e in jsonl] == [e.event_id for e in events]  # nothing lost on the way
    assert "fume-edge run: interrupted" in out
