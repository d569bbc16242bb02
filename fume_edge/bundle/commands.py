"""`fume-edge bundle ...`: the model-update commands; each parses its options and calls one function."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from fume_edge.bundle.manifest import DEFAULT_MAX_MB
from fume_edge.console import console

app = typer.Typer(
    help="Signed model bundles: make and sign where you train; verify, install, roll back on the device.",
    no_args_is_help=True,
)

ModelsDir = Annotated[
    Path | None,
    typer.Option(
        "--models-dir",
        help="Installed models folder \\[default: $FUME_EDGE_MODELS, else ./models (the service: "
        "/var/lib/fume-edge/models)].",
    ),
]
TrustedKeys = Annotated[
    Path | None,
    typer.Option(
        "--trusted-keys",
        help="Folder of trusted signers' .pub keys \\[default: $FUME_EDGE_TRUSTED_KEYS, else "
        "/etc/fume-edge/trusted_keys].",
    ),
]
MaxMb = Annotated[float, typer.Option("--max-mb", help="Refuse bundles bigger than this (MB).")]


@app.command()
def keygen(
    key: Annotated[
        Path, typer.Argument(help="Private key to write (PEM, mode 0600); the public key goes beside it as KEY.pub.")
    ],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing key files.")] = False,
) -> None:
    """Make an Ed25519 signing key pair."""
    from fume_edge.bundle.keys import generate_keypair, key_id, load_private_key

    private, public = generate_keypair(key, overwrite)
    signer = key_id(load_private_key(private).public_key())
    console.print(f"wrote {private} (keep it secret) and {public} (key id {signer})")
    console.print(f"next: copy {public} into /etc/fume-edge/trusted_keys/ on each device")


@app.command()
def make(
    model: Annotated[Path, typer.Argument(help="FP32 ONNX from `fume-edge export`.")],
    val: Annotated[
        Path,
        typer.Option("--val", help="Paired validation CSV (from `fume-edge pair`) to take the bundled samples from."),
    ],
    key: Annotated[Path, typer.Option("--key", help="Private signing key from `fume-edge bundle keygen`.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Bundle file to write, e.g. fume-2026-12.fume.")],
    int8: Annotated[
        Path | None,
        typer.Option(
            "--int8",
            help="TensorRT-target QDQ INT8 ONNX from `fume-edge quantize` \\[default: none; devices build FP16].",
        ),
    ] = None,
    card: Annotated[
        Path | None, typer.Option("--card", help="Model card \\[default: MODEL_CARD.md beside the model].")
    ] = None,
    thresholds: Annotated[
        Path | None,
        typer.Option("--thresholds", help="Alert thresholds YAML the model was validated with \\[default: none]."),
    ] = None,
    metrics: Annotated[
        Path | None,
        typer.Option(
            "--metrics",
            help="Eval JSON (`fume-edge eval --json`) to record instead of measuring \\[default: measure now].",
        ),
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="Version name \\[default: MODEL-YYYYMMDD-HHMMSS (UTC)].")
    ] = None,
    val_count: Annotated[int, typer.Option("--val-count", min=1, help="Validation samples to bundle.")] = 16,
    val_max_mb: Annotated[
        float, typer.Option("--val-max-mb", help="Size cap of the bundled validation frames in MB.")
    ] = 32.0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing bundle file.")] = False,
) -> None:
    """Write one signed bundle: model(s), card, a small validation set and the FP32 metrics measured on it."""
    from fume_edge.bundle.make import MakeOptions, make_bundle

    manifest = make_bundle(
        MakeOptions(
            model=model,
            val=val,
            key=key,
            output=output,
            int8=int8,
            card=card,
            thresholds=thresholds,
            metrics=metrics,
            version=version,
            val_count=val_count,
            val_max_mb=val_max_mb,
            overwrite=overwrite,
        )
    )
    shown = {k: manifest.metrics.get(k) for k in ("gas_iou", "balanced_accuracy")}
    console.print(f"wrote {output}: version {manifest.version}, {len(manifest.members)} members, metrics {shown}")
    console.print(f"next: fume-edge bundle verify {output}   then on the device: fume-edge bundle install {output}")


@app.command()
def verify(
    bundle: Annotated[Path, typer.Argument(help="Bundle file.")],
    trusted_keys: TrustedKeys = None,
    max_mb: MaxMb = DEFAULT_MAX_MB,
) -> None:
    """Check a bundle's signature and every member's sha256; print its manifest."""
    from fume_edge.bundle.archive import read_bundle
    from fume_edge.bundle.keys import load_trusted_keys, trusted_keys_dir

    manifest = read_bundle(bundle, load_trusted_keys(trusted_keys_dir(trusted_keys)), int(max_mb * 1e6))
    print(manifest.to_bytes().decode("utf-8"))
    console.print(f"{bundle}: signature and all {len(manifest.members)} members OK (key {manifest.key_id})")


@app.command()
def install(
    bundle: Annotated[Path, typer.Argument(help="Bundle file from `fume-edge bundle make`.")],
    models: ModelsDir = None,
    trusted_keys: TrustedKeys = None,
    max_mb: MaxMb = DEFAULT_MAX_MB,
    keep: Annotated[int, typer.Option("--keep", min=2, help="Installed versions to keep.")] = 3,
    iou_margin: Annotated[
        float, typer.Option("--iou-margin", help="Gate: how far below the recorded gas IoU the model may score.")
    ] = 0.01,
    ba_margin: Annotated[
        float, typer.Option("--ba-margin", help="Gate: how far below the recorded balanced accuracy it may score.")
    ] = 0.01,
    min_fps: Annotated[
        float, typer.Option("--min-fps", help="Gate: the least FPS of a model call on this device.")
    ] = 5.0,
    device: Annotated[
        str, typer.Option("--device", help="auto (TensorRT engine where TensorRT is, else ONNX Runtime), cpu, cuda.")
    ] = "auto",
) -> None:
    """Verify, unpack, build for this device, gate on the bundled set, then switch models/current atomically."""
    from fume_edge.bundle.gate import GateSettings
    from fume_edge.bundle.install import InstallOptions, install_bundle

    options = InstallOptions(
        models=models,
        trusted_keys=trusted_keys,
        max_mb=max_mb,
        keep=keep,
        gate=GateSettings(iou_margin=iou_margin, balanced_accuracy_margin=ba_margin, min_fps=min_fps, device=device),
    )
    result = install_bundle(bundle, options, progress=lambda line: console.print(line, highlight=False))
    gate = result.model.gate
    console.print(
        f"installed {result.model.version} ({result.model.backend}) in {result.seconds:.1f} s: gas IoU "
        f"{gate.get('gas_iou')}, balanced accuracy {gate.get('balanced_accuracy')}, {gate.get('fps')} FPS; "
        f"previous: {result.previous or 'none'}",
        highlight=False,
    )
    console.print(
        "a running `fume-edge run` watching this models folder swaps to it now; undo with `fume-edge bundle rollback`"
    )


@app.command("list")
def list_cmd(models: ModelsDir = None) -> None:
    """Installed versions, oldest first; * marks the current one."""
    from fume_edge.bundle.store import ModelStore, models_dir

    store = ModelStore(models_dir(models))
    current = store.current()
    for model in store.versions():
        mark = "*" if model.version == current else " "
        console.print(
            f"{mark} {model.version}  {model.backend}  {model.installed_at}  sha {model.model_sha256[:12]}",
            highlight=False,
        )


@app.command()
def rollback(
    version: Annotated[str | None, typer.Argument(help="Version to switch to \\[default: the previous one].")] = None,
    models: ModelsDir = None,
) -> None:
    """Switch models/current back (a running `fume-edge run` follows)."""
    from fume_edge.bundle.install import rollback as roll_back

    now, was = roll_back(models, version)
    console.print(f"current: {now} (was {was})")


@app.command()
def status(models: ModelsDir = None) -> None:
    """The current and previous model and the last update event, as JSON."""
    from fume_edge.bundle.install import status as model_status

    print(json.dumps(model_status(models), indent=1))
