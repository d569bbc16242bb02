"""`fume-edge train`: the epoch loop that ties data, model, loss, optimiser, checkpoints, logs and plots together.

A run folder holds everything a run produced: `config.yaml` (the resolved configuration), `best.pt` (weights of
the best epoch by `monitor`), `last.pt` and every `checkpoint_every` epochs `epoch_NNN.pt` (weights plus the full
resume state), `metrics.csv`, and PNG plots. `--resume RUN/last.pt` continues the same run in the same folder.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from rich.console import Console
from torch import nn

from fume_edge.config import Layer, given, mapping_layer, replace, resolve_config
from fume_edge.console import print_next
from fume_edge.model.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from fume_edge.errors import FumeEdgeError
from fume_edge.labels import PH_LOGITS
from fume_edge.model.registry import count_parameters, create_model
from fume_edge.train import data as train_data
from fume_edge.train import distributed, plots, state
from fume_edge.train.config import TrainConfig
from fume_edge.train.loop import Evaluation, evaluate, train_epoch
from fume_edge.train.losses import MultiTaskLoss
from fume_edge.train.tracking import RunLog, epoch_summary, percent, progress_bars


def _heads(model: nn.Module) -> set[str]:
    """The output keys the model produces, from one tiny forward pass (cheaper than guessing from its modules)."""
    probe = torch.zeros(1, 1, 64, 64)
    with torch.no_grad():
        keys = set(model.eval()(probe, probe, torch.ones(1, 2)))
    model.train()
    return keys


def _usable_monitor(monitor: str, heads: set[str]) -> str:
    """`monitor`, or `joint` when the model lacks the head it scores (a baseline trained with the defaults)."""
    needs_ph = monitor in ("balanced_accuracy", "macro_f1")
    if (needs_ph and PH_LOGITS not in heads) or (monitor == "gas_iou" and heads == {PH_LOGITS}):
        return "joint"
    return monitor


def _run_dir(config: TrainConfig, ctx: distributed.DistContext) -> Path:
    """A new run folder under `output_dir`; every rank gets rank 0's name (time stamps can differ)."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = distributed.broadcast_object(ctx, config.run_name or f"{config.model}-{stamp}")
    run_dir = Path(config.output_dir) / name
    if (run_dir / "last.pt").exists():
        raise FumeEdgeError(
            f"{run_dir}: a run already exists there; set another run_name or resume from {run_dir / 'last.pt'}"
        )
    return run_dir


def _gathered(ctx: distributed.DistContext, result: Evaluation) -> tuple[dict[str, float], dict[str, float]]:
    """Validation losses and metrics over every rank's shard."""
    sums = distributed.sum_array(ctx, result.meter.as_array())
    result.meter.load_array(sums)
    accumulator = result.accumulator
    accumulator.load_array(distributed.sum_array(ctx, accumulator.as_array()))
    return result.meter.means(), accumulator.compute()


def _load_weights(model: nn.Module, path: str | Path, architecture: str) -> Checkpoint:
    """Load a checkpoint's weights into `model` (same architecture, strict); returns the checkpoint."""
    checkpoint = load_checkpoint(path)
    if checkpoint.architecture != architecture:
        raise FumeEdgeError(
            f"{path}: holds a {checkpoint.architecture!r} model, not {architecture!r}; "
            "set model to match or start from another checkpoint"
        )
    model.load_state_dict(checkpoint.build_model().state_dict())
    return checkpoint


class Trainer:
    """One training run on this rank. Build it, then `run()`; `train()` is the convenient entry point."""

    def __init__(
        self,
        config: TrainConfig,
        ctx: distributed.DistContext,
        resume: Path | None,
        console: Console,
        show_progress: bool,
    ) -> None:
        self.config, self.ctx, self.console, self.show_progress = config, ctx, console, show_progress
        state.seed_everything(config.seed)
        self.splits = train_data.load_splits(config)
        model = create_model(config.model, **config.model_kwargs)
        self.heads = _heads(model)
        monitor = _usable_monitor(config.monitor, self.heads)
        if monitor != config.monitor:
            if ctx.is_main:
                console.print(f"{config.model} has no head for monitor {config.monitor}; monitoring {monitor}")
            self.config = config = replace(config, monitor=monitor)
        if PH_LOGITS in self.heads:
            train_data.require_every_class(self.splits.train, config)
        if config.init_from and resume is None:
            _load_weights(model, config.init_from, config.model)
        self.model = model.to(ctx.device)
        optim = config.optim
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=optim.lr, weight_decay=optim.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, config.epochs, optim.min_lr)
        self.amp = config.amp and ctx.device.type == "cuda"
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=self.amp)
        self.loss_fn = MultiTaskLoss(config.loss)
        self.progress = state.Progress()
        if resume is not None:
            saved = state.resume_of(_load_weights(self.model, resume, config.model), resume)
            self.progress = state.restore(saved, self.optimizer, self.scheduler, self.scaler)
            self.run_dir = resume.parent
        else:
            self.run_dir = _run_dir(config, ctx)
        if ctx.enabled:
            ids = [ctx.device.index] if ctx.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.log: RunLog | None = None

    def _start_files(self) -> None:
        """Rank 0: the run folder, the resolved config, the metrics log."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        resolved = yaml.safe_dump(self.config.to_dict(), sort_keys=False)
        (self.run_dir / "config.yaml").write_text(resolved, encoding="utf-8")
        self.log = RunLog(self.run_dir, self.config.logging, self.config.to_dict(), self.progress.epoch)

    def _save(self, metrics: dict[str, float], improved: bool) -> None:
        """Rank 0: last (and periodic) checkpoints with resume state; best with weights only."""
        resume = state.resume_state(self.optimizer, self.scheduler, self.scaler, self.progress)
        full = state.make_checkpoint(self.model, self.config, metrics, resume)
        save_checkpoint(full, self.run_dir / "last.pt")
        every = self.config.checkpoint_every
        if every and self.progress.epoch % every == 0:
            save_checkpoint(full, self.run_dir / f"epoch_{self.progress.epoch:03d}.pt")
        if improved:
            best = state.make_checkpoint(self.model, self.config, metrics)
            best.provenance["epoch"] = self.progress.epoch
            save_checkpoint(best, self.run_dir / "best.pt")

    def _plot(self, result: Evaluation, improved: bool, final: bool) -> None:
        """Rank 0: curves every `plot_every` epochs; confusion and overlays of the latest and of the best epoch."""
        every = self.config.logging.plot_every
        if not (final or improved or (every and self.progress.epoch % every == 0)):
            return
        assert self.log is not None
        plots.plot_curves(self.log.history, self.run_dir / "curves.png")
        suffixes = ["latest", "best"] if improved else ["latest"]
        for suffix in suffixes:
            if result.accumulator.ph is not None:
                plots.plot_confusion(result.accumulator.ph, self.run_dir / f"confusion_{suffix}.png")
            if result.examples:
                plots.plot_overlays(result.examples, self.run_dir / f"overlays_{suffix}.png")

    def _epoch(self, progress_bar: Any, batch_task: int) -> tuple[dict[str, float], Evaluation]:
        """Train one epoch and validate; returns the metrics.csv row and the validation result."""
        epoch = self.progress.epoch + 1
        started = time.perf_counter()
        lr = self.optimizer.param_groups[0]["lr"]
        loader = train_data.train_loader(self.splits.train, self.config, self.ctx, epoch)
        progress_bar.reset(batch_task, total=len(loader), description=f"epoch {epoch}")

        def on_batch(step: int, parts: dict[str, float]) -> None:
            progress_bar.update(batch_task, completed=step + 1, info=f"loss {parts['loss']:.4f}")

        train_losses = train_epoch(
            self.model,
            loader,
            self.loss_fn,
            self.optimizer,
            self.scaler,
            self.ctx.device,
            self.amp,
            self.config.optim.grad_clip,
            on_batch,
        )
        self.scheduler.step()
        train_sum = distributed.sum_array(self.ctx, train_losses.as_array())
        train_losses.load_array(train_sum)
        progress_bar.update(batch_task, info="validating")
        keep = self.config.logging.overlay_samples if self.ctx.is_main else 0
        result = evaluate(
            state.unwrap(self.model),
            train_data.val_loader(self.splits.val, self.config, self.ctx),
            self.loss_fn,
            self.ctx.device,
            self.amp,
            keep,
        )
        val_losses, metrics = _gathered(self.ctx, result)
        row = {
            "epoch": epoch,
            "lr": lr,
            "seconds": time.perf_counter() - started,
            "train_samples": int(train_losses.count),
            "val_samples": int(result.meter.count),
        }
        row.update({f"train_{k}": v for k, v in train_losses.means().items()})
        row.update({f"val_{k}": v for k, v in val_losses.items()})
        row.update({f"val_{k}": v for k, v in metrics.items()})
        return row, result

    def _patience_spent(self) -> bool:
        return self.config.patience is not None and self.progress.bad_epochs >= self.config.patience

    def run(self) -> Path:
        """Train until `epochs` or early stopping; returns the run folder."""
        config, ctx = self.config, self.ctx
        if ctx.is_main:
            self._start_files()
            self.console.print(
                f"[bold]{config.model}[/] ({count_parameters(state.unwrap(self.model)):,} parameters) "
                f"on {ctx.device} x{ctx.world_size} -> {self.run_dir}"
            )
        distributed.barrier(ctx)
        enabled = self.show_progress and ctx.is_main
        stopped = self._patience_spent()  # resuming a run that had already stopped early trains no further
        with progress_bars(self.console, enabled) as bars:
            epoch_task = bars.add_task("epochs", total=config.epochs, completed=self.progress.epoch, info="")
            batch_task = bars.add_task("epoch", total=None, info="")
            while self.progress.epoch < config.epochs and not stopped:
                row, result = self._epoch(bars, batch_task)
                self.progress.epoch = int(row["epoch"])
                improved = self.progress.observe(row[f"val_{config.monitor}"])
                stopped = self._patience_spent()
                if ctx.is_main:
                    assert self.log is not None
                    self.log.log(row)
                    self._save(row, improved)
                    self._plot(result, improved, final=stopped or self.progress.epoch == config.epochs)
                    bars.console.print(epoch_summary(row, improved))
                bars.update(
                    epoch_task,
                    completed=self.progress.epoch,
                    info=f"best {config.monitor} {percent(self.progress.best)} @ {self.progress.best_epoch}",
                )
                distributed.barrier(ctx)
        if ctx.is_main and self.log is not None:
            self.log.close()
            reason = f"early stop: {config.patience} epochs without a better {config.monitor}" if stopped else "done"
            self.console.print(
                f"{reason}: best {config.monitor} {percent(self.progress.best)} at epoch "
                f"{self.progress.best_epoch}; {self.run_dir / 'best.pt'}"
            )
            print_next(*next_commands(config, self.run_dir), out=self.console)
        return self.run_dir


def resumed_layer(path: Path) -> Layer:
    """The configuration a run was started with, read back from its checkpoint."""
    checkpoint = load_checkpoint(path)
    saved = checkpoint.provenance.get("config")
    if not isinstance(saved, dict):
        raise FumeEdgeError(f"{path}: no training configuration inside; resume from a run's last.pt")
    return mapping_layer(saved, f"{path}:config")


def command_config(
    config_path: Path | None,
    resume: Path | None,
    data: Path | None = None,
    model: str | None = None,
    *,
    epochs: int | None = None,
    size: tuple[int, int] | None = None,
    batch: int | None = None,
    name: str | None = None,
) -> TrainConfig:
    """The configuration `fume-edge train` runs: the YAML (or, resuming without one, the run's own), then flags."""
    under = [resumed_layer(resume)] if resume is not None and config_path is None else []
    options = given(
        ("data.root", data and str(data), "--data"),
        ("model", model, "--model"),
        ("epochs", epochs, "--epochs"),
        ("data.image_size", size, "--size"),
        ("batch_size", batch, "--batch"),
        ("run_name", name, "--name"),
    )
    return resolve_config(TrainConfig, config_path, options, under=under).config


def next_commands(config: TrainConfig, run_dir: Path) -> tuple[str, ...]:
    """What a researcher runs after training: score the best checkpoint on the test split, then export it."""
    best = run_dir / "best.pt"
    test_csv = Path(config.data.root or "DATA") / "paired_test.csv"
    return (f"fume-edge eval {best} --data {test_csv}", f"fume-edge export {best} -o engines/{run_dir.name}.onnx")


def train(
    config: TrainConfig, resume: Path | None = None, console: Console | None = None, show_progress: bool = True
) -> Path:
    """Train with `config` (continuing the run of `resume` when given); under `torchrun` every rank calls this."""
    ctx = distributed.setup(config.device)
    try:
        trainer = Trainer(config, ctx, resume, console or Console(), show_progress)
        return trainer.run()
    finally:
        distributed.teardown(ctx)
