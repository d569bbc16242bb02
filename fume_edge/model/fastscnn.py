"""Fast-SCNN building blocks, encoder and segmentation head, named as in the FUME research state dict.

Module and attribute names are part of the checkpoint format (the research checkpoints `fume-edge import` reads):
renaming one breaks `import`.
"""

from __future__ import annotations

import torch
from torch import nn

from fume_edge.model.pooling import adaptive_avg_pool2d, upsample_to


class ConvBNReLU(nn.Module):
    """conv → BN → ReLU (keys `conv`, `bn`)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, bias: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding=kernel_size // 2, bias=bias)
        self.bn = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class DSConv(nn.Module):
    """Depthwise-separable conv: depthwise 3×3 (no BN) → pointwise 1×1 → BN → ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_ch, in_ch, 3, stride, padding=1, groups=in_ch, bias=False)
        self.pointwise = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.pointwise(self.depthwise(x))))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: expand 1×1 → BN → ReLU6 → depthwise 3×3 → BN → ReLU6 → project 1×1 → BN (+ residual)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: int = 6) -> None:
        super().__init__()
        hidden = in_ch * expansion
        self.use_residual = stride == 1 and in_ch == out_ch
        self.conv = nn.Sequential(
            nn.Conv2d(in_ch, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


def _bottleneck(in_ch: int, out_ch: int, stride: int, blocks: int = 3) -> nn.Sequential:
    layers = [InvertedResidual(in_ch, out_ch, stride)]
    layers += [InvertedResidual(out_ch, out_ch, 1) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ConvReLU(nn.Module):
    """1×1 conv with bias → ReLU (key `conv`): the pyramid-pooling branch."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 1, bias=True)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x))


class PyramidPooling(nn.Module):
    """Pools to 1, 2, 3, 6 bins, projects each to C/4, upsamples, concatenates with the input, projects back."""

    BINS = (1, 2, 3, 6)

    def __init__(self, channels: int = 128) -> None:
        super().__init__()
        branch = channels // 4
        self.conv1 = ConvReLU(channels, branch)
        self.conv2 = ConvReLU(channels, branch)
        self.conv3 = ConvReLU(channels, branch)
        self.conv4 = ConvReLU(channels, branch)
        self.out_conv = ConvBNReLU(channels * 2, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = (int(x.shape[-2]), int(x.shape[-1]))
        branches = [self.conv1, self.conv2, self.conv3, self.conv4]
        pooled = [
            upsample_to(conv(adaptive_avg_pool2d(x, bins)), size)
            for conv, bins in zip(branches, self.BINS, strict=True)
        ]
        return self.out_conv(torch.cat([x, *pooled], dim=1))


class LearningToDownsample(nn.Module):
    """1 → 32 → 48 → 64 channels at 1/8 resolution."""

    def __init__(self, in_ch: int = 1) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_ch, 32, 3, stride=2)
        self.dsconv1 = DSConv(32, 48, stride=2)
        self.dsconv2 = DSConv(48, 64, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dsconv2(self.dsconv1(self.conv(x)))


class GlobalFeatureExtractor(nn.Module):
    """Three inverted-residual stages (64/96/128 ch, strides 2/2/1) and pyramid pooling: 1/8 → 1/32."""

    def __init__(self) -> None:
        super().__init__()
        self.bottleneck1 = _bottleneck(64, 64, 2)
        self.bottleneck2 = _bottleneck(64, 96, 2)
        self.bottleneck3 = _bottleneck(96, 128, 1)
        self.ppm = PyramidPooling(128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ppm(self.bottleneck3(self.bottleneck2(self.bottleneck1(x))))


class FastSCNNEncoder(nn.Module):
    """One stream's encoder: returns (low 64 ch at 1/8, high 128 ch at 1/32)."""

    HIGH_CHANNELS = 128

    def __init__(self, in_ch: int = 1) -> None:
        super().__init__()
        self.learning_to_downsample = LearningToDownsample(in_ch)
        self.global_feature_extractor = GlobalFeatureExtractor()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.learning_to_downsample(x)
        return low, self.global_feature_extractor(low)


Features = tuple[torch.Tensor, torch.Tensor]  # (low, high)


def encode_as_one_batch(encoder: FastSCNNEncoder, co2: torch.Tensor, ch4: torch.Tensor) -> tuple[Features, Features]:
    """A shared encoder runs both frames as one batch of two: one pass, the same numbers as two."""
    low, high = encoder(torch.cat([co2, ch4], dim=0))
    n = co2.shape[0]
    return (low[:n], high[:n]), (low[n:], high[n:])


class FeatureFusion(nn.Module):
    """Merges high (1/32) into low (1/8) features, then reweights channels with an SE attention."""

    def __init__(self, low_ch: int = 64, high_ch: int = 128, out_ch: int = 128, reduction: int = 4) -> None:
        super().__init__()
        self.dwconv = DSConv(low_ch, out_ch)
        self.conv_high = nn.Sequential(nn.Conv2d(high_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch))
        self.relu = nn.ReLU(inplace=True)
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(out_ch, out_ch // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_ch // reduction, out_ch, 1),
            nn.Sigmoid(),
        )

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        high = self.conv_high(upsample_to(high, (int(low.shape[-2]), int(low.shape[-1]))))
        fused = self.relu(self.dwconv(low) + high)
        return fused * self.attention(fused)


class SegHead(nn.Module):
    """Feature fusion → DSConv → DSConv → Dropout2d → 1×1 classifier, upsampled to the input size."""

    def __init__(self, num_classes: int = 3, channels: int = 128) -> None:
        super().__init__()
        self.feature_fusion = FeatureFusion(out_ch=channels)
        self.classifier = nn.Sequential(
            DSConv(channels, channels),
            DSConv(channels, channels),
            nn.Dropout2d(0.1),
            nn.Conv2d(channels, num_classes, 1),
        )

    def forward(self, low: torch.Tensor, high: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return upsample_to(self.classifier(self.feature_fusion(low, high)), size)
