"""The FUME fusion module: self-attention per gas, cross-attention between gases, channel attention, 3×3 fusion.

The research code applies cross-attention only when both modalities are present, with a Python `if`. Here the rule
is a per-sample blend `x + both·gamma·attn` (both = mask_co2·mask_ch4), which is numerically the same for every
sample and exports as one static graph.
"""

from __future__ import annotations

import torch
from torch import nn


def _attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Unscaled dot-product attention over spatial positions: softmax(QᵀK) over keys, out = V·Aᵀ.

    query/key: (B, Cq, N); value: (B, C, N) → (B, C, N). Computed in float32 whatever the model's precision:
    the unscaled energies overflow half precision (a no-op, and no graph node, in a float32 model).
    """
    dtype = value.dtype
    attention = torch.softmax(torch.bmm(query.float().transpose(1, 2), key.float()), dim=-1)
    return torch.bmm(value.float(), attention.transpose(1, 2)).to(dtype)


class SelfAttention(nn.Module):
    """Position attention within one stream; `gamma` starts at 0 so training begins from the identity."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        self.query_conv = nn.Conv2d(channels, channels // reduction, 1)
        self.key_conv = nn.Conv2d(channels, channels // reduction, 1)
        self.value_conv = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        out = _attend(self.query_conv(x).flatten(2), self.key_conv(x).flatten(2), self.value_conv(x).flatten(2))
        return x + self.gamma * out.view(b, c, h, w)


class CrossAttention(nn.Module):
    """Each stream attends to the other with the same projections; returns the two residual updates."""

    def __init__(self, channels: int, qk_channels: int = 64) -> None:
        super().__init__()
        self.query_conv = nn.Conv2d(channels, qk_channels, 1)
        self.key_conv = nn.Conv2d(channels, qk_channels, 1)
        self.value_conv = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, co2: torch.Tensor, ch4: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, h, w = co2.shape
        q_co2, k_co2, v_co2 = (conv(co2).flatten(2) for conv in (self.query_conv, self.key_conv, self.value_conv))
        q_ch4, k_ch4, v_ch4 = (conv(ch4).flatten(2) for conv in (self.query_conv, self.key_conv, self.value_conv))
        co2_update = self.gamma * _attend(q_co2, k_ch4, v_ch4).view(b, c, h, w)
        ch4_update = self.gamma * _attend(q_ch4, k_co2, v_co2).view(b, c, h, w)
        return co2_update, ch4_update


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation over the concatenated streams."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, channels // reduction)
        self.fc2 = nn.Linear(channels // reduction, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean(dim=(2, 3))))))
        return x * weights[:, :, None, None]


class FUMEFusion(nn.Module):
    """Fuses the two streams' high features into one (B, C, h, w) map for the pH head."""

    def __init__(self, channels: int = 128) -> None:
        super().__init__()
        self.self_att_co2 = SelfAttention(channels)
        self.self_att_ch4 = SelfAttention(channels)
        self.cross_att = CrossAttention(channels)
        self.channel_att = ChannelAttention(channels * 2)
        self.fusion_conv = nn.Sequential(
            nn.Conv2d(channels * 2, channels, 3, padding=1, bias=True),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, co2: torch.Tensor, ch4: torch.Tensor, modality_mask: torch.Tensor) -> torch.Tensor:
        use_co2 = modality_mask[:, 0].view(-1, 1, 1, 1)
        use_ch4 = modality_mask[:, 1].view(-1, 1, 1, 1)
        co2 = self.self_att_co2(co2 * use_co2)
        ch4 = self.self_att_ch4(ch4 * use_ch4)
        both = use_co2 * use_ch4
        co2_update, ch4_update = self.cross_att(co2, ch4)
        co2, ch4 = co2 + both * co2_update, ch4 + both * ch4_update
        return self.fusion_conv(self.channel_att(torch.cat([co2, ch4], dim=1)))
