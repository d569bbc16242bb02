"""Each station's live camera images on a real `fume-edge run --http` with three stations whose scenes differ."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from pipeline_support import synthetic_videos
from web_support import WebRun

STATIONS = ("pen-1", "pen-2", "pen-3")


def three_scenes(folder: Path) -> str:
    """run.yaml for three stations, each looping its own recorded scene (another seed: another tube, elsewhere)."""
    lines = ["stations:"]
    for seed, station in enumerate(STATIONS, start=1):
        videos = synthetic_videos(
            folder / station, fps=8.0, seconds=6.0, clock_offset_s=0.0, jitter_s=0.0, drop_rate=0.0, seed=seed
        )
        lines.append(f"  - {{id: {station}, co2: '{videos['co2']}', ch4: '{videos['ch4']}'}}")
    return "\n".join([*lines, "sources: {loop: true}", "http: {frame_fps: 10}", ""])


def _image(run: WebRun, path: str) -> np.ndarray:
    response = run.get(path)
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg", (path, response.text)
    return cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_GRAYSCALE).astype(np.float32)


def _differ(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a - b)))


def test_every_station_serves_its_own_camera_images(tmp_path: Path, small_onnx: Path) -> None:
    run = WebRun(
        tmp_path, "--model", str(small_onnx), "--duration", "120", yaml=three_scenes(tmp_path), stations=True
    ).wait_ready()
    try:
        run.wait_for(lambda s: all(row["inferences"] >= 5 for row in s["stations"]), timeout=90)
        shots = []
        for _ in range(2):  # two moments of each station's scene (a new result in between: http.frame_fps 10)
            shots.append(
                {(st, cam): _image(run, f"/api/frame/{st}/{cam}.jpg") for st in STATIONS for cam in ("co2", "ch4")}
            )
            time.sleep(0.5)
        first_station = {cam: _image(run, f"/api/frame/{cam}.jpg") for cam in ("co2", "ch4")}  # the old route
        unknown_station = run.get("/api/frame/pen-4/co2.jpg")
        unknown_camera = run.get("/api/frame/pen-2/h2s.jpg")
    finally:
        output = run.stop()
    assert "Traceback" not in output, output
    for key in shots[0]:
        assert shots[0][key].shape == shots[1][key].shape == (96, 128), key  # the small model's input size
    for cam in ("co2", "ch4"):
        # A later image of each station looks most like the earlier one of the same station: its own scene.
        for station, later in [*((st, shots[1][(st, cam)]) for st in STATIONS), ("pen-1", first_station[cam])]:
            differences = {st: _differ(shots[0][(st, cam)], later) for st in STATIONS}
            assert min(differences, key=differences.__getitem__) == station, (cam, station, differences)
            assert differences[station] > 0, (cam, station)  # a newer result's image: each station's cache renews
    assert unknown_station.status_code == 404 and "pen-4" in unknown_station.json()["error"]
    assert unknown_camera.status_code == 404 and "h2s" in unknown_camera.json()["error"]
