"""The `fume-edge` command line: parse, validate, delegate. No logic lives here."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from fume_edge import __version__
from fume_edge.bench.backend_names import DEFAULT_BACKENDS
from fume_edge.bundle.commands import app as bundle_app
from fume_edge.config_cli import config_app
from fume_edge.errors import FumeEdgeError
from fume_edge.extras import feature_for_module
from fume_edge.labels import INPUT_HEIGHT, INPUT_SIZE_TEXT, INPUT_WIDTH
from fume_edge.fleet.commands import app as fleet_app
from fume_edge.logs import setup_logging

app = typer.Typer(
    name="fume-edge",
    help="Train, export and run FUME gas-imaging models (CO2 + CH4 OGI) on edge devices.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(bundle_app, name="bundle")
app.add_typer(fleet_app)  # `collect`, `fleet`
app.add_typer(config_app, name="config")
err_console = Console(stderr=True)


def main() -> None:
    """Console entry point: a user error becomes one red line and exit code 2, never a traceback."""
    setup_logging()
    try:
        app()
    except FumeEdgeError as exc:
        _fail(str(exc))
    except ModuleNotFoundError as exc:
        feature = feature_for_module(exc.name or "")
        if feature is None:
            raise
        _fail(
            f"this command needs {(exc.name or '').split('.')[0]}, which this install lacks; install it with: "
            f"{feature.hint}"
        )


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(2)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", help="Print the fume-edge version and exit."),
) -> None:
    if version:
        typer.echo(f"fume-edge {__version__}")
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


@app.command("import")
def import_cmd(
    path: Path = typer.Argument(..., help="FUME research checkpoint (.pth/.pt): model_state_dict, state_dict or bare."),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="fume-edge checkpoint to write \\[default: PATH with .fume.pt]."
    ),
    uint16_range: str | None = typer.Option(
        None,
        "--uint16-range",
        help="LOW,HIGH raw 16-bit counts the research model's thermal frames were scaled from \\[default: 0,65535].",
    ),
    input_size: str | None = typer.Option(
        None,
        "--input-size",
        help="WIDTHxHEIGHT the research model was trained "
        f"at \\[default: its config's data.image_size, else {INPUT_SIZE_TEXT}].",
    ),
    class_names: str | None = typer.Option(
        None,
        "--class-names",
        help="pH class names in head order, "
        "comma-separated \\[default: its config's, else Healthy,Transitional,Acidotic].",
    ),
) -> None:
    """Import a FUME research checkpoint into a fume-edge checkpoint (weights-only loading, strict keys)."""
    from fume_edge.model.checkpoint import save_checkpoint
    from fume_edge.deploy.reports import print_import_summary
    from fume_edge.deploy.upstream_import import ImportOptions, import_research_checkpoint

    names = [n.strip() for n in class_names.split(",")] if class_names else None
    options = ImportOptions(
        _parse_size(input_size, "--input-size"), names, _parse_range("--uint16-range", uint16_range)
    )
    result = import_research_checkpoint(path, options)
    out = output or path.with_name(path.stem + ".fume.pt")
    save_checkpoint(result.checkpoint, out)
    print_import_summary(result, out)


@app.command()
def info(
    model: Path | None = typer.Argument(None, help="Model file (.pt, .onnx, .engine) \\[default: the bundled model]."),
) -> None:
    """Describe a model: parameters, GFLOPs, inputs/outputs, classes and provenance."""
    from fume_edge.deploy.model_info import model_info
    from fume_edge.deploy.reports import print_model_info
    from fume_edge.assets import default_model_path

    print_model_info(model_info(model or default_model_path()))


def _parse_range(flag: str, text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise FumeEdgeError(f"{flag} {text!r}: expected LOW,HIGH, e.g. 20000,40000") from None
    return low, high


def _parse_size(text: str | None, flag: str = "--size") -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise FumeEdgeError(f"{flag} {text!r}: expected WIDTHxHEIGHT, e.g. {INPUT_SIZE_TEXT}") from None
    return width, height


@app.command()
def export(
    checkpoint: Path = typer.Argument(..., help="fume-edge checkpoint (.pt) from `train` or `import`."),
    output: Path = typer.Option(Path("engines/fume.onnx"), "-o", "--output", help="ONNX file to write."),
    size: str | None = typer.Option(
        None,
        help="Input size WIDTHxHEIGHT of the graph, multiples of 32 \\[default: "
        f"{INPUT_SIZE_TEXT}, the deployment size, whatever the training size].",
    ),
    logits: bool = typer.Option(False, "--logits", help="Also output raw seg logits (for parity checks)."),
    fp16: bool = typer.Option(
        False, "--fp16", help="Half-precision compute, float32 I/O (strongly typed TensorRT ≥ 11)."
    ),
    simplify: bool = typer.Option(True, "--simplify/--no-simplify", help="Simplify with onnxsim."),
    check_data: Path | None = typer.Option(
        None, "--check-data", help="Paired CSV for the parity check \\[default: synthetic pairs]."
    ),
    check_pairs: int = typer.Option(6, "--check-pairs", min=1, help="How many pairs the parity check runs."),
    mask_scale: int = typer.Option(
        1, "--mask-scale", help="Seg masks at 1/N of the input size (1, 2, 4, 8): faster output path; 1 is exact."
    ),
    batch: int = typer.Option(
        1, "--batch", min=1, help="Static batch: pairs per call, one per station (`run` with N stations)."
    ),
    dynamic_batch: bool = typer.Option(
        False,
        "--dynamic-batch/--static-batch",
        help="With --batch N: a call takes 1 to N pairs, so a tick with fewer ready stations runs only those "
        "instead of padding to N (docs/models.md).",
    ),
) -> None:
    """Export a checkpoint to ONNX (static shape, argmax in the graph) and check it against PyTorch."""
    from fume_edge.deploy.onnx.commands import export_and_check
    from fume_edge.deploy.reports import print_export

    job = export_and_check(
        checkpoint,
        output,
        size=_parse_size(size),
        with_logits=logits,
        fp16=fp16,
        simplify=simplify,
        check_data=check_data,
        check_count=check_pairs,
        mask_scale=mask_scale,
        batch=batch,
        dynamic_batch=dynamic_batch,
    )
    print_export(job)
    if not job.parity.passed:
        raise typer.Exit(code=1)


@app.command()
def pair(
    annotations: Path = typer.Argument(
        ..., help="Annotation CSV: image, mask, gas, ph, animal_id, session_id, timestamp."
    ),
    out_dir: Path = typer.Option(..., "-o", "--out", help="Folder for paired_{train,val,test}.csv."),
    tolerance: float | None = typer.Option(
        None, "--tolerance", help="Max CO2-CH4 time difference in seconds \\[default: data.yaml pairing.tolerance_s]."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Split seed \\[default: data.yaml pairing.seed]."),
    config: Path | None = typer.Option(None, "--config", help="Data YAML overriding fume_edge/configs/data.yaml."),
) -> None:
    """Pair CO2 and CH4 frames (same animal and session, nearest in time) and split train/val/test by animal."""
    from fume_edge.data.commands import pair_command

    pair_command(annotations, out_dir, config, tolerance, seed)


@app.command()
def synth(
    out_dir: Path = typer.Argument(..., help="Output folder (created; must be empty unless --overwrite)."),
    pairs: int = typer.Option(
        1000, "--pairs", help="CO2/CH4 pairs to render (extra single CO2 frames follow data.yaml co2_share)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same files."),
    videos: bool = typer.Option(
        False, "--videos", help="Write paired CO2/CH4 videos with per-frame ground truth instead of a frame dataset."
    ),
    workers: int | None = typer.Option(None, "--workers", help="Processes rendering frames \\[default: all cores]."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace a non-empty output folder (only once the new one is complete)."
    ),
    seconds: float | None = typer.Option(
        None,
        "--seconds",
        min=0.1,
        help="Videos: length in seconds, the pH "
        "segments scaled to fit \\[default: data.yaml synthetic.video.segments, 24 s].",
    ),
    fps: float | None = typer.Option(
        None, "--fps", help="Videos: frames per second \\[default: data.yaml synthetic.video.fps, 10]."
    ),
    clock_offset: float | None = typer.Option(
        None, "--clock-offset", help="Videos: CH4 camera clock minus CO2 camera clock, seconds."
    ),
    jitter: float | None = typer.Option(None, "--jitter", help="Videos: timestamp jitter (uniform ±), seconds."),
    drop_rate: float | None = typer.Option(None, "--drop-rate", help="Videos: chance that a camera drops a frame."),
    outage: str | None = typer.Option(
        None, "--outage", help="Videos: GAS:START:SECONDS, e.g. ch4:10:3 (that camera is silent)."
    ),
    config: Path | None = typer.Option(None, "--config", help="Data YAML overriding fume_edge/configs/data.yaml."),
) -> None:
    """Generate synthetic OGI data: frames, masks and an annotation CSV in the real format (or --videos)."""
    from fume_edge.data.commands import synth_command

    synth_command(
        out_dir,
        pairs=pairs,
        seed=seed,
        videos=videos,
        workers=workers,
        overwrite=overwrite,
        config_path=config,
        fps=fps,
        clock_offset_s=clock_offset,
        jitter_s=jitter,
        drop_rate=drop_rate,
        outage=outage,
        seconds=seconds,
    )


@app.command()
def alerts(
    db: str = typer.Option(
        "alerts.db",
        "--db",
        help="Alert database written by `fume-edge run`, or the fleet "
        "archive postgresql://user@host/db of `fume-edge collect`.",
    ),
    device: str | None = typer.Option(None, "--device", help="Fleet archive: only this device."),
    station: str | None = typer.Option(
        None,
        "--station",
        help="Only events of this station (run.yaml `stations:` id; `default` for a one-station run).",
    ),
    since: str | None = typer.Option(
        None,
        "--since",
        help="Only events from this time on: ISO-8601 (UTC unless it has an offset) or an age like 30m, 2h, 7d.",
    ),
    alert_type: str | None = typer.Option(
        None, "--type", help="Only this alert type, e.g. acidosis_risk, camera_degraded."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="One JSON event per line (the JSONL/MQTT schema) instead of a table."
    ),
    limit: int | None = typer.Option(None, "--limit", help="Only the newest N events."),
    subject: str | None = typer.Option(
        None, "--subject", help="Only events raised while this animal or sample id was set."
    ),
    wide: bool = typer.Option(False, "--wide", help="All columns (gas areas, frames, snapshot) for a wide terminal."),
    as_csv: bool = typer.Option(
        False, "--csv", help="CSV for a spreadsheet (a column per value) instead of a table: `--csv > alerts.csv`."
    ),
) -> None:
    """List or export alert events (read-only; safe while `run` is writing)."""
    from fume_edge.fleet.commands import is_fleet_db, show_fleet_alerts

    if is_fleet_db(db):
        show_fleet_alerts(
            db,
            since=since,
            alert_type=alert_type,
            as_json=as_json,
            limit=limit,
            subject=subject,
            device=device,
            station=station,
            wide=wide,
            as_csv=as_csv,
        )
        return
    if device is not None:
        raise FumeEdgeError("--device filters the fleet archive: pass --db postgresql://user@host/db")
    from fume_edge.alerts.report import show_alerts

    show_alerts(
        Path(db),
        since=since,
        alert_type=alert_type,
        as_json=as_json,
        limit=limit,
        subject=subject,
        wide=wide,
        as_csv=as_csv,
        station=station,
    )


@app.command()
def tag(
    subject: str = typer.Argument(..., help="Animal or sample id for the results from now on; '' clears it."),
    db: Path = typer.Option(Path("alerts.db"), "--db", help="Alert database of the running `fume-edge run`."),
    station: str | None = typer.Option(
        None, "--station", help="Only this station (run.yaml `stations:` id) \\[default: every station]."
    ),
) -> None:
    """Set the current subject (animal or sample id): a running `run` tags every alert and trend row with it."""
    from fume_edge.alerts.subject import tag_command

    tag_command(db, subject, station)


@app.command()
def train(
    config: Path | None = typer.Option(None, "--config", help="Training YAML overriding fume_edge/configs/train.yaml."),
    data: Path | None = typer.Option(
        None, "--data", help="Folder with paired_{train,val}.csv \\[default: data.root of the config]."
    ),
    model: str | None = typer.Option(None, "--model", help="Registered model name \\[default: the config's model]."),
    resume: Path | None = typer.Option(
        None, "--resume", help="RUN/last.pt: continue that run in its folder (its own config unless --config)."
    ),
    epochs: int | None = typer.Option(
        None, "--epochs", min=1, help="Epochs to train \\[default: the config's epochs, 100]."
    ),
    size: str | None = typer.Option(
        None,
        "--size",
        help=f"Training input WIDTHxHEIGHT \\[default: the config's data.image_size, {INPUT_SIZE_TEXT}].",
    ),
    batch: int | None = typer.Option(
        None, "--batch", min=1, help="Batch size \\[default: the config's batch_size, 8]."
    ),
    name: str | None = typer.Option(None, "--name", help="Run folder name under runs/ \\[default: MODEL-TIMESTAMP]."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Live progress bars."),
) -> None:
    """Train a model; under `torchrun --nproc_per_node N --no-python fume-edge train ...` with DDP."""
    from fume_edge.console import console
    from fume_edge.train.trainer import command_config, train as run_training

    resolved = command_config(
        config, resume, data, model, epochs=epochs, size=_parse_size(size), batch=batch, name=name
    )
    run_training(resolved, resume=resume, console=console, show_progress=progress)


@app.command("eval")
def eval_cmd(
    model: Path = typer.Argument(..., help="Model file: .pt checkpoint (and .onnx/.engine through the runtime)."),
    data: Path = typer.Option(..., "--data", help="Paired CSV to score, e.g. paired_test.csv."),
    json_path: Path | None = typer.Option(None, "--json", help="Write the metrics as JSON here ('-' for stdout)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, ... (as the backend understands it)."),
    data_config: Path | None = typer.Option(
        None, "--data-config", help="Data YAML (16-bit range) overriding configs/data.yaml."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Score only the first N samples."),
) -> None:
    """Score a model on a paired split: pH and segmentation metrics as a table and JSON."""
    from fume_edge.train.evaluate import eval_command

    eval_command(model, data, json_path, device, data_config, limit)


@app.command()
def run(
    co2: str | None = typer.Option(
        None,
        "--co2",
        help="CO2 camera: /dev/videoN or an index, csi://N, gst:PIPELINE, "
        "a video file, an image folder, an rtsp:// or http:// URL, or `synthetic` \\[default: "
        "run.yaml sources.co2.source].",
    ),
    ch4: str | None = typer.Option(
        None, "--ch4", help="CH4 camera (same kinds as --co2) \\[default: run.yaml sources.ch4.source]."
    ),
    station_id: str | None = typer.Option(
        None,
        "--station-id",
        help="The id of the --co2/--ch4 station in alerts and topics \\[default: run.yaml station_id, default].",
    ),
    model: Path | None = typer.Option(
        None, "--model", help="Model file (.onnx, .engine, .pt) \\[default: run.yaml model.path, the bundled model]."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="Run YAML overriding fume_edge/configs/run.yaml; it can hold every option below."
    ),
    alerts_db: Path | None = typer.Option(
        None, "--alerts", help="SQLite alert database \\[default: run.yaml sinks.sqlite.path, alerts.db]."
    ),
    jsonl: Path | None = typer.Option(None, "--jsonl", help="Also append every alert event to this JSONL file."),
    mqtt: str | None = typer.Option(
        None,
        "--mqtt",
        help="Also publish to mqtt://\\[user@]host\\[:port]/prefix "
        "(mqtts:// for TLS); the password from FUME_EDGE_MQTT_PASSWORD or "
        "sinks.mqtt.password_file.",
    ),
    mqtt_ca: Path | None = typer.Option(
        None, "--mqtt-ca", help="mqtts: CA bundle of the broker's certificate \\[default: system CAs]."
    ),
    mqtt_cert: Path | None = typer.Option(None, "--mqtt-cert", help="mqtts: client certificate (with --mqtt-key)."),
    mqtt_key: Path | None = typer.Option(None, "--mqtt-key", help="mqtts: client private key."),
    mqtt_insecure: bool = typer.Option(
        False, "--mqtt-insecure", help="mqtts: skip certificate checks (test brokers only)."
    ),
    snapshots: Path | None = typer.Option(
        None, "--snapshots", help="Write a PNG of the frames and masks for alert events into this folder."
    ),
    display: bool = typer.Option(
        False, "--display", help="Show the frames with their masks in a window (needs a GUI OpenCV and a display)."
    ),
    record: Path | None = typer.Option(
        None, "--record", help="Write the frames with their masks to this video file (.avi or .mp4)."
    ),
    max_frames: int | None = typer.Option(None, "--max-frames", min=1, help="Stop after N inferences."),
    duration: float | None = typer.Option(None, "--duration", min=0.0, help="Stop after S seconds."),
    device_id: str | None = typer.Option(
        None, "--device-id", help="This device's id in alerts and MQTT topics \\[default: host name]."
    ),
    quiet: bool = typer.Option(
        False, "--quiet", help="No live panel (for services): only alert lines and the summary."
    ),
    device: str | None = typer.Option(
        None,
        "--device",
        help="Inference device: auto, cpu, cuda, tensorrt (as the "
        "backend understands it) \\[default: run.yaml model.device, auto].",
    ),
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="CPU threads for inference \\[default: the backend's]."
    ),
    pacing: str | None = typer.Option(
        None, "--pacing", help="Recorded sources: realtime or fast \\[default: run.yaml sources.pacing]."
    ),
    loop: bool | None = typer.Option(
        None, "--loop/--no-loop", help="Recorded sources start again at their end \\[default: run.yaml sources.loop]."
    ),
    http: str | None = typer.Option(
        None,
        "--http",
        help="Serve the web page, JSON API and /metrics on HOST:PORT, "
        "e.g. 127.0.0.1:8080 \\[default: run.yaml http.listen, off].",
    ),
) -> None:
    """Run the capture loop: one or more stations of two gas cameras, paired frames, one batched inference per tick,
    alerts that are never lost."""
    from fume_edge.console import console
    from fume_edge.pipeline.run import RunOptions, run as run_pipeline

    result = run_pipeline(
        RunOptions(
            co2=co2,
            ch4=ch4,
            station_id=station_id,
            model=model,
            config=config,
            alerts=alerts_db,
            jsonl=jsonl,
            mqtt=mqtt,
            mqtt_ca=mqtt_ca,
            mqtt_cert=mqtt_cert,
            mqtt_key=mqtt_key,
            mqtt_insecure=mqtt_insecure,
            snapshots=snapshots,
            display=display,
            record=record,
            max_frames=max_frames,
            duration=duration,
            device_id=device_id,
            quiet=quiet,
            device=device,
            threads=threads,
            pacing=pacing,
            loop=loop,
            http=http,
        ),
        console,
    )
    if result.lost:
        raise typer.Exit(1)


@app.command()
def calibrate(
    data: Path = typer.Option(..., "--data", help="Paired training CSV (from `fume-edge pair`); only pairs are used."),
    output: Path = typer.Option(..., "-o", "--output", help="Calibration folder to write, e.g. calibration/NAME."),
    count: int = typer.Option(300, "--count", min=1, help="Pairs to select, stratified by pH class × gas presence."),
    seed: int = typer.Option(0, "--seed", help="Selection seed; the same seed and CSV give the same set."),
    size: str = typer.Option(INPUT_SIZE_TEXT, "--size", help="Model input WIDTHxHEIGHT the tensors are made for."),
    config: Path | None = typer.Option(
        None, "--config", help="Data YAML (16-bit range) overriding fume_edge/configs/data.yaml."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing calibration folder."),
) -> None:
    """Make an INT8 calibration set: a manifest (committed) and cached input tensors (git-ignored)."""
    from fume_edge.deploy.int8.commands import calibrate_command

    calibrate_command(data, output, count, seed, _parse_size(size) or (INPUT_WIDTH, INPUT_HEIGHT), config, overwrite)


@app.command()
def quantize(
    model: Path = typer.Argument(..., help="FP32 ONNX from `fume-edge export`."),
    calib: Path = typer.Option(..., "--calib", help="Calibration folder from `fume-edge calibrate`."),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="QDQ INT8 ONNX to write \\[default: MODEL.TARGET.int8.onnx beside MODEL]."
    ),
    target: str = typer.Option(
        "tensorrt",
        "--target",
        help="tensorrt (symmetric int8, zero points 0) or cpu (uint8 activations, fast in ONNX Runtime).",
    ),
    method: str = typer.Option("minmax", "--method", help="Calibration method: minmax, entropy or percentile."),
    exclude: list[str] | None = typer.Option(
        None, "--exclude", help="Keep in float: a node name, op type or name pattern ('/model/fusion/*'); repeatable."
    ),
    sensitivity: bool = typer.Option(
        False,
        "--sensitivity",
        help="Measure each node's quantization error and keep the worst in float until the limits hold.",
    ),
    max_float: int = typer.Option(
        16, "--max-float", min=1, help="Sensitivity search: most nodes it may keep in float."
    ),
    sensitivity_ops: list[str] | None = typer.Option(
        None, "--sensitivity-op", help="Sensitivity search: only rank these op types (repeatable) \\[default: all]."
    ),
    modalities: str = typer.Option(
        "all", "--modalities", help="Calibrate on both-present pairs only (both) or also one camera off (all)."
    ),
    val: Path | None = typer.Option(
        None, "--val", help="Paired CSV for the accuracy report \\[default: held-back calibration pairs]."
    ),
    force: bool = typer.Option(False, "--force", help="Write the model even if it breaks the accuracy limits."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
) -> None:
    """Quantize an FP32 ONNX to QDQ INT8 and check its accuracy against FP32 (exit 1 past the limits)."""
    from fume_edge.deploy.int8.quantize import QuantizeOptions
    from fume_edge.deploy.int8.commands import quantize_command

    options = QuantizeOptions(
        target=target,
        method=method,
        exclude=tuple(exclude or ()),
        sensitivity=sensitivity,
        max_float=max_float,
        sensitivity_ops=tuple(sensitivity_ops or ()),
        modalities=modalities,
        force=force,
    )
    quantize_command(model, calib, output, options, val, overwrite)


@app.command()
def check(
    model: Path = typer.Argument(..., help="ONNX model to check (FP32, FP16 or QDQ INT8)."),
    trt: list[str] | None = typer.Option(
        None, "--trt", help="TensorRT version: 8.6, 10 or 11; repeatable \\[default: all three]."
    ),
) -> None:
    """Check an ONNX graph against TensorRT's parser rules on the CPU; every finding names its node (exit 1 on any)."""
    from fume_edge.deploy.tensorrt.commands import check_command

    check_command(model, trt)


@app.command("build-engine")
def build_engine_cmd(
    model: Path = typer.Argument(..., help="ONNX from `fume-edge export` (float) or `quantize` (QDQ INT8)."),
    fp16: bool = typer.Option(
        False, "--fp16", help="Half precision (TensorRT ≥ 11: from an FP16 ONNX made on the fly)."
    ),
    int8: bool = typer.Option(False, "--int8", help="INT8 (a float ONNX is calibrated and quantized first)."),
    calib: Path | None = typer.Option(None, "--calib", help="--int8: calibration folder from `fume-edge calibrate`."),
    data: Path | None = typer.Option(
        None, "--data", help="--int8: paired training CSV to make the calibration set from."
    ),
    calibrator: str = typer.Option(
        "qdq", "--calibrator", help="--int8: qdq (explicit quantization) or entropy (TensorRT 8.6/10.x calibrator)."
    ),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="Engine to write \\[default: engines/MODEL.PRECISION.engine]."
    ),
    workspace_gb: float = typer.Option(2.0, "--workspace-gb", help="Builder workspace in GiB."),
    opt_level: int = typer.Option(3, "--opt-level", min=0, max=5, help="Builder optimisation level 0-5."),
    dla_core: int | None = typer.Option(
        None, "--dla-core", help="Run on this DLA core, GPU fallback \\[default: GPU only]."
    ),
    version_compatible: bool = typer.Option(
        False, "--version-compatible", help="Engine also runs on later TensorRT and the lean runtime."
    ),
    verbose: bool = typer.Option(False, "--verbose", help="Show TensorRT's info messages too."),
) -> None:
    """Build a TensorRT engine (+ NAME.engine.json sidecar) from an ONNX model, on the device that will run it."""
    from fume_edge.deploy.tensorrt.commands import build_command
    from fume_edge.deploy.tensorrt.trt_settings import EngineBuildOptions

    if fp16 == int8:
        raise FumeEdgeError("build-engine: pass exactly one of --fp16 or --int8")
    options = EngineBuildOptions(
        precision="int8" if int8 else "fp16",
        calibrator=calibrator,
        workspace_gb=workspace_gb,
        opt_level=opt_level,
        dla_core=dla_core,
        version_compatible=version_compatible,
    )
    build_command(
        model, output or Path("engines") / f"{model.stem}.{options.label}.engine", options, calib, data, verbose
    )


@app.command()
def bench(
    models: list[Path] | None = typer.Argument(
        None, help="Model files: an .onnx export and/or its .pt checkpoint \\[default: the bundled model]."
    ),
    backends: str = typer.Option(",".join(DEFAULT_BACKENDS), "--backends", help="Comma-separated backends to measure."),
    iterations: int = typer.Option(100, "--iterations", min=1, help="Timed calls per backend."),
    warmup: int = typer.Option(10, "--warmup", min=0, help="Untimed calls per backend first."),
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="CPU threads for torch and ONNX Runtime \\[default: each library's]."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda (as the backends understand it)."),
    pipeline: bool = typer.Option(
        False,
        "--pipeline",
        help="Also run the capture loop end to end (pairing, prepare, infer, alerts, SQLite) on frames in memory.",
    ),
    stations: int = typer.Option(
        1,
        "--stations",
        min=1,
        help="End to end with N stations sharing one batched call "
        "per tick (implies --pipeline; the ONNX row exports the checkpoint at batch N).",
    ),
    target_fps: float = typer.Option(100.0, "--target-fps", help="The FPS each row is judged against."),
    check: bool = typer.Option(False, "--check", help="Exit 1 when no measured row meets --target-fps."),
    json_out: Path | None = typer.Option(
        None, "--json", help="Write every sample, the machine and the model's sha256 here."
    ),
    calib: Path | None = typer.Option(
        None,
        "--calib",
        help="Calibration folder for the onnxruntime-int8 row "
        "\\[default: synthetic pairs; speed does not depend on it].",
    ),
    estimate: str | None = typer.Option(
        None,
        "--estimate",
        help="Instead of measuring: a roofline bound and an "
        "expected FPS on a Jetson (orin-nano-8gb, orin-nano-super, orin-nx-16gb, agx-orin-64gb, "
        "xavier-nx, all, or a device YAML).",
    ),
    batch: int = typer.Option(
        1,
        "--batch",
        min=1,
        help="With --estimate: pairs per engine call (one per station); "
        "reports how many 30-FPS stations the device carries.",
    ),
) -> None:
    """Measure every backend side by side against the FPS target (or, with --estimate, predict a Jetson's)."""
    from fume_edge.console import console

    if estimate is not None:
        from fume_edge.bench.commands import estimate_command

        estimate_command(models or [], estimate, target_fps, json_out, console, batch)
        return
    from fume_edge.bench.commands import BenchOptions, bench_command, parse_backends

    code = bench_command(
        BenchOptions(
            models=list(models or []),
            backends=parse_backends(backends),
            iterations=iterations,
            warmup=warmup,
            threads=threads,
            device=device,
            pipeline=pipeline,
            stations=stations,
            target_fps=target_fps,
            check=check,
            json_out=json_out,
            calibration=calib,
        ),
        console,
    )
    if code:
        raise typer.Exit(code=code)


@app.command()
def doctor(
    config: Path | None = typer.Option(
        None, "--config", help="Run YAML whose model and MQTT broker to check \\[default: fume_edge/configs/run.yaml]."
    ),
    model: Path | None = typer.Option(None, "--model", help="Model `run` will use \\[default: the bundled model]."),
) -> None:
    """What this machine has for each command, what is missing and the one command that fixes it."""
    from fume_edge.console import console
    from fume_edge.doctor import doctor_command

    raise typer.Exit(code=doctor_command(console, config=config, model=model))


from fume_edge.web.commands import serve_command  # noqa: E402 (imports typer only)

app.command("serve")(serve_command)
