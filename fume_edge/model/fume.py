"""FUMEFastSCNN: two Fast-SCNN streams (CO2, CH4), attention fusion, a seg head per gas and a pH head."""

from __future__ import annotations

import torch
from torch import nn

from fume_edge.labels import CH4_SEG_LOGITS, CO2_SEG_LOGITS, PH_LOGITS
from fume_edge.model.fastscnn import FastSCNNEncoder, Features, SegHead, encode_as_one_batch
from fume_edge.model.fusion import FUMEFusion
from fume_edge.model.registry import register_model


def classification_head(in_ch: int, num_classes: int, dropout: float = 0.3) -> nn.Sequential:
    """Global mean → 256 → 128 → classes MLP (indices match the research state dict: 2, 5, 8)."""
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(in_ch, 256),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(256, 128),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(128, num_classes),
    )


@register_model("fume_fastscnn")
class FUMEFastSCNN(nn.Module):
    """The FUME model. With `shared_encoder`, `co2_encoder` and `ch4_encoder` are the same module object.

    forward(co2, ch4, modality_mask) with frames (B,1,H,W) in [0,1] and modality_mask (B,2) = [use_co2, use_ch4]
    returns {ph_logits (B,C), co2_seg_logits (B,S,H,W), ch4_seg_logits (B,S,H,W)}.
    """

    def __init__(self, num_classes: int = 3, num_seg_classes: int = 3, shared_encoder: bool = True) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_seg_classes = num_seg_classes
        self.shared_encoder = shared_encoder
        self.co2_encoder = FastSCNNEncoder()
        self.ch4_encoder = self.co2_encoder if shared_encoder else FastSCNNEncoder()
        channels = FastSCNNEncoder.HIGH_CHANNELS
        self.fusion = FUMEFusion(channels)
        self.co2_seg_head = SegHead(num_seg_classes, channels)
        self.ch4_seg_head = SegHead(num_seg_classes, channels)
        self.cls_head = classification_head(channels, num_classes)

    def encode(self, co2: torch.Tensor, ch4: torch.Tensor) -> tuple[Features, Features]:
        """(low, high) per stream."""
        if self.shared_encoder:
            return encode_as_one_batch(self.co2_encoder, co2, ch4)
        return self.co2_encoder(co2), self.ch4_encoder(ch4)

    def forward(self, co2: torch.Tensor, ch4: torch.Tensor, modality_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        size = (int(co2.shape[-2]), int(co2.shape[-1]))
        (co2_low, co2_high), (ch4_low, ch4_high) = self.encode(co2, ch4)
        fused = self.fusion(co2_high, ch4_high, modality_mask)
        return {
            PH_LOGITS: self.cls_head(fused),
            CO2_SEG_LOGITS: self.co2_seg_head(co2_low, co2_high, size),
            CH4_SEG_LOGITS: self.ch4_seg_head(ch4_low, ch4_high, size),
        }
