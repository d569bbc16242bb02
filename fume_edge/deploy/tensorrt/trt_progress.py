"""Progress while TensorRT builds (minutes on an Orin Nano): TensorRT's own phases as rich bars on TensorRT ≥ 10
(IProgressMonitor), a spinner with the elapsed time on 8.6, which has no monitor. Imports tensorrt: the build
imports this module only once TensorRT is known to be there."""

from __future__ import annotations

import tensorrt as trt
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from fume_edge.console import console


def build_progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def phase_bars(bars: Progress) -> trt.IProgressMonitor:
    """A progress monitor drawing one bar per TensorRT build phase (nested phases indented under their parent)."""

    class PhaseBars(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self.tasks: dict[str, TaskID] = {}
            self.depth: dict[str, int] = {}

        def phase_start(self, phase_name: str, parent_phase: str, num_steps: int) -> None:
            self.depth[phase_name] = self.depth.get(parent_phase, -1) + 1 if parent_phase else 0
            label = "  " * self.depth[phase_name] + phase_name
            self.tasks[phase_name] = bars.add_task(label, total=max(num_steps, 1))

        def step_complete(self, phase_name: str, step: int) -> bool:
            if phase_name in self.tasks:
                bars.update(self.tasks[phase_name], completed=step + 1)
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            task = self.tasks.pop(phase_name, None)
            if task is not None:
                bars.remove_task(task)

    return PhaseBars()


def attach_progress(config: trt.IBuilderConfig, bars: Progress) -> trt.IProgressMonitor | None:
    """Phase bars where this TensorRT has a progress monitor (≥ 10.0); the caller keeps the monitor alive."""
    if not hasattr(trt, "IProgressMonitor"):
        return None
    monitor = phase_bars(bars)
    config.progress_monitor = monitor
    return monitor
