"""Export-safe adaptive average pooling and resizing.

`nn.AdaptiveAvgPool2d` with bins that do not divide the map (15×20 features into 6×6 bins at 640×480) exports to
ONNX as an op TensorRT rejects or computes differently. Here each bin is a plain mean over torch's exact bin edges
(start = floor(i·n/k), end = ceil((i+1)·n/k)), computed once per static shape as a matrix product: pooled =
Rₕ · x · R_wᵀ, which every exporter and TensorRT handle (MatMul) and which equals torch's result to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def adaptive_bin_edges(size: int, bins: int) -> list[tuple[int, int]]:
    """torch's adaptive pooling bin edges for `size` inputs split into `bins` outputs."""
    return [((i * size) // bins, -((-(i + 1) * size) // bins)) for i in range(bins)]


def _averaging_matrix(size: int, bins: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(bins, size) matrix whose row i averages the inputs of bin i; built in Python so it traces as a constant."""
    rows = [
        [1.0 / (end - start) if start <= j < end else 0.0 for j in range(size)]
        for start, end in adaptive_bin_edges(size, bins)
    ]
    return torch.tensor(rows, dtype=dtype, device=device)


def adaptive_avg_pool2d(x: torch.Tensor, bins: int) -> torch.Tensor:
    """Exactly `F.adaptive_avg_pool2d(x, bins)` for a square `bins` grid, built from export-safe ops.

    Shapes are Python ints at trace time (static-shape export), so the matrices become constants in the graph.
    """
    height, width = int(x.shape[-2]), int(x.shape[-1])
    if bins == 1:
        return x.mean(dim=(2, 3), keepdim=True)
    rows = _averaging_matrix(height, bins, x.dtype, x.device)
    cols = _averaging_matrix(width, bins, x.dtype, x.device)
    return torch.matmul(torch.matmul(rows, x), cols.t())


def upsample_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize with align_corners=False, the only resize the FUME architecture uses."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
