"""The `pair` and `synth` commands behind the CLI: apply option overrides, show progress, print what was made.

The library functions (pairing, synth_dataset, synth_video) stay free of printing so tests and other tools call
them directly; everything a person watches in a terminal lives here.
"""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from fume_edge.console import console, print_next
from fume_edge.config import given, replace
from fume_edge.data.config import DataConfig, load_data_config
from fume_edge.data.pairing import KINDS, PairingReport, run_pairing
from fume_edge.data.split import SPLITS
from fume_edge.data.synth_dataset import plan_sessions, write_synthetic_dataset
from fume_edge.data.synth_video import stretch_to, video_frame_count, write_paired_videos
from fume_edge.errors import FumeEdgeError
from fume_edge.labels import PH_CLASS_NAMES


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def pairing_table(report: PairingReport) -> Table:
    """Pairs and single-gas samples per class per split, with the animals in each split."""
    table = Table(title="Paired samples", title_justify="left")
    for column in ("split", "class", "pairs", "CO2 only", "CH4 only", "animals"):
        table.add_column(column, justify="left" if column in ("split", "class") else "right")
    for split in SPLITS:
        counts = report.counts(split)
        animals = len({s.animal_id for s in report.splits[split]})
        for class_id, name in enumerate(PH_CLASS_NAMES):
            cells = [str(counts[(class_id, kind)]) for kind in KINDS]
            table.add_row(
                split if class_id == 0 else "",
                name,
                *cells,
                str(animals) if class_id == 0 else "",
                end_section=class_id == len(PH_CLASS_NAMES) - 1,
            )
    return table


def pair_command(
    annotations: Path, out_dir: Path, config_path: Path | None, tolerance_s: float | None, seed: int | None
) -> None:
    config = load_data_config(
        config_path, given(("pairing.tolerance_s", tolerance_s, "--tolerance"), ("pairing.seed", seed, "--seed"))
    )
    report = run_pairing(annotations, out_dir, config.pairing, config.ph_classes)
    console.print(pairing_table(report))
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    console.print(f"wrote {', '.join(str(p) for p in report.files.values())}")
    print_next(f"fume-edge train --data {shlex.quote(str(out_dir))} --name NAME")


def parse_outage(text: str) -> dict[str, object]:
    """`GAS:START:SECONDS` (e.g. `ch4:10:3`) as the keys of `synthetic.video.outage` (checked with the rest)."""
    parts = text.split(":")
    try:
        if len(parts) != 3:
            raise ValueError
        return {"gas": parts[0].strip().lower(), "start_s": float(parts[1]), "seconds": float(parts[2])}
    except ValueError:
        raise FumeEdgeError(f"--outage {text!r}: expected GAS:START:SECONDS, e.g. ch4:10:3") from None


def synth_command(
    out_dir: Path,
    *,
    pairs: int,
    seed: int,
    videos: bool,
    workers: int | None,
    overwrite: bool,
    config_path: Path | None,
    fps: float | None = None,
    clock_offset_s: float | None = None,
    jitter_s: float | None = None,
    drop_rate: float | None = None,
    outage: str | None = None,
    seconds: float | None = None,
) -> None:
    video_options = given(
        ("synthetic.video.fps", fps, "--fps"),
        ("synthetic.video.clock_offset_s", clock_offset_s, "--clock-offset"),
        ("synthetic.video.jitter_s", jitter_s, "--jitter"),
        ("synthetic.video.drop_rate", drop_rate, "--drop-rate"),
        ("synthetic.video.outage", outage and parse_outage(outage), "--outage"),
    )
    config: DataConfig = load_data_config(config_path, video_options if videos else ())
    synthetic = config.synthetic
    started = time.perf_counter()
    if videos:
        video = stretch_to(synthetic.video, seconds) if seconds is not None else synthetic.video
        synthetic = replace(synthetic, video=video)
        with _progress() as progress:
            task = progress.add_task("rendering videos", total=2 * video_frame_count(video))
            paths = write_paired_videos(
                out_dir, synthetic, config.ph_classes, seed, overwrite, on_frames=lambda n: progress.advance(task, n)
            )
        console.print(
            f"wrote {', '.join(str(p) for p in paths.values())} and their per-frame CSVs "
            f"in {time.perf_counter() - started:.1f} s"
        )
        co2, ch4 = (shlex.quote(str(paths[gas])) for gas in ("co2", "ch4"))
        print_next(f"fume-edge run --co2 {co2} --ch4 {ch4} --pacing fast --model MODEL.onnx")
        return
    plans = plan_sessions(synthetic, config.ph_classes, pairs, seed)
    total = sum(plan.frames for plan in plans)
    workers = workers or os.cpu_count() or 1
    with _progress() as progress:
        task = progress.add_task("rendering frames", total=total)
        csv_path = write_synthetic_dataset(
            out_dir, plans, synthetic, seed, workers, overwrite, on_frames=lambda n: progress.advance(task, n)
        )
    console.print(
        f"wrote {total} frames ({pairs} pairs) of {len({p.animal_id for p in plans})} animals in {len(plans)} "
        f"sessions to {out_dir} in {time.perf_counter() - started:.1f} s"
    )
    parent = shlex.quote(str(out_dir.parent)) if out_dir.parent != Path(".") else "DIR"
    print_next(f"fume-edge pair {shlex.quote(str(csv_path))} -o {parent}")
