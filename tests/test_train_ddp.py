"""DistributedDataParallel on CPU: `torchrun` with two gloo processes trains a step and only rank 0 writes."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from train_support import fast_config, make_paired_dataset


def test_two_gloo_processes_train_and_rank0_writes(tmp_path: Path) -> None:
    paired = make_paired_dataset(tmp_path)
    runs = tmp_path / "runs"
    config = fast_config(paired, runs, epochs=1, batch_size=2, data={"samples_per_epoch": 8, "max_val_samples": 6})
    fume_edge = Path(sys.executable).with_name("fume-edge")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "--no-python",
        str(fume_edge),
        "train",
        "--config",
        str(config),
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "on cpu x2" in done.stdout
    run_dirs = list(runs.iterdir())
    assert len(run_dirs) == 1  # both ranks used rank 0's run name; nothing else was written
    with (run_dirs[0] / "metrics.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1
    assert float(rows[0]["train_samples"]) == 8  # 2 ranks x 2 steps x batch 2: each rank trained its own shard
    assert float(rows[0]["val_samples"]) == 6  # validation shards summed over the ranks
    assert (run_dirs[0] / "best.pt").is_file() and (run_dirs[0] / "last.pt").is_file()
