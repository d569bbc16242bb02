"""Where epoch results go: `metrics.csv` (always), TensorBoard and Weights & Biases (when asked for), the console.

Only rank 0 builds a `RunLog`. The CSV is opened in append mode and reread on resume, so a resumed run extends the
same file and its curves; optional trackers are imported only when switched on, and a tracker asked for but not
installed is one clear error rather than a silent no-op.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from fume_edge.errors import FumeEdgeError
from fume_edge.train.config import LoggingSettings


# Shown first: the acceptance metrics of a default model (gas IoU and balanced accuracy) and what they combine.
HEADLINE = ("joint", "gas_iou", "co2_iou_gas", "ch4_iou_gas", "balanced_accuracy", "macro_f1", "accuracy")


def read_history(path: Path) -> list[dict[str, float]]:
    """Rows of an existing `metrics.csv` as floats (empty cells as NaN)."""
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return [{k: float(v) if v else math.nan for k, v in row.items()} for row in csv.DictReader(fh)]


class RunLog:
    """Appends one row per epoch to `metrics.csv` and mirrors it to the trackers that are switched on."""

    def __init__(self, run_dir: Path, settings: LoggingSettings, config: dict[str, Any], resume_epoch: int) -> None:
        self.path = run_dir / "metrics.csv"
        self.history = [row for row in read_history(self.path) if row["epoch"] <= resume_epoch]
        self._fields: list[str] | None = list(self.history[0]) if self.history else None
        if self.history or self.path.exists():  # drop rows written after the checkpoint we resume from
            self._rewrite()
        self._tensorboard = self._wandb = None
        if settings.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise FumeEdgeError(
                    "logging.tensorboard: tensorboard is not installed; `pip install tensorboard` or set it to false"
                ) from None
            self._tensorboard = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=resume_epoch + 1)
        if settings.wandb:
            try:
                import wandb
            except ImportError:
                raise FumeEdgeError(
                    "logging.wandb: wandb is not installed; `pip install wandb` or set it to false"
                ) from None
            self._wandb = wandb.init(
                project=settings.wandb_project,
                name=run_dir.name,
                dir=str(run_dir),
                config=config,
                resume="allow",
                id=run_dir.name,
            )

    def _rewrite(self) -> None:
        with self.path.open("w", newline="", encoding="utf-8") as fh:
            if self._fields:
                writer = csv.DictWriter(fh, fieldnames=self._fields)
                writer.writeheader()
                writer.writerows(self.history)

    def log(self, row: dict[str, float]) -> None:
        """Append an epoch's row (keys of the first row fix the columns; later missing keys are left empty)."""
        if self._fields is None:
            self._fields = list(row)
            self._rewrite()
        self.history.append(row)
        with self.path.open("a", newline="", encoding="utf-8") as fh:
            csv.DictWriter(fh, fieldnames=self._fields, extrasaction="ignore").writerow(row)
        step = int(row["epoch"])
        scalars = {k: v for k, v in row.items() if k != "epoch" and not math.isnan(v)}
        if self._tensorboard is not None:
            for key, value in scalars.items():
                self._tensorboard.add_scalar(key.replace("_", "/", 1), value, step)
            self._tensorboard.flush()
        if self._wandb is not None:
            self._wandb.log(scalars, step=step)

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()
        if self._wandb is not None:
            self._wandb.finish()


def progress_bars(console: Console, enabled: bool) -> Progress:
    """Epoch and batch bars with the live loss; disabled (draws nothing) on ranks other than 0 or when asked."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        disable=not enabled,
    )


def epoch_summary(row: dict[str, float], best: bool) -> str:
    """One console line per epoch, short enough for 80 columns: losses and the headline metrics in percent."""
    parts = []
    if "train_loss" in row:
        val = row.get("val_loss", math.nan)
        parts.append(f"loss {row['train_loss']:.2f}" + ("" if math.isnan(val) else f" (val {val:.2f})"))
    for key, label in (("val_balanced_accuracy", "bal.acc"), ("val_gas_iou", "IoU"), ("val_joint", "joint")):
        if key in row and not math.isnan(row[key]):
            parts.append(f"{label} {percent(row[key], 1)}")
    flag = ", [green]best[/]" if best else ""  # the monitored metric is named in the epochs bar and the summary
    return f"epoch {int(row['epoch'])}: " + ", ".join(parts) + flag


def percent(value: float, decimals: int = 2) -> str:
    """A fraction as percent points (IoU, accuracy, F1, agreement), the one unit every report uses."""
    return "n/a" if math.isnan(value) else f"{100 * value:.{decimals}f}%"


def metric_text(key: str, value: float) -> str:
    """Percent for the fraction metrics; Cohen's kappa (-1 to 1) as it is."""
    if key.endswith("kappa"):
        return "n/a" if math.isnan(value) else f"{value:.3f}"
    return percent(value)


def metrics_table(metrics: dict[str, float], title: str) -> Table:
    """A two-column rich table of metric name and value."""
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    first = [k for k in HEADLINE if k in metrics]
    for key, value in [(k, metrics[k]) for k in first] + [(k, v) for k, v in metrics.items() if k not in first]:
        table.add_row(key, metric_text(key, value))
    return table
