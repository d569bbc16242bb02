"""The five baselines FUME-FastSCNN is compared against, built from the same Fast-SCNN blocks.

Each one removes or replaces one idea of the main model, so a comparison says what that idea is worth:
- `seg_only`: two gas masks, no pH head (is the pH task helping segmentation?);
- `cls_only`: pH from both gases through the FUME fusion, no masks (is segmentation helping pH?);
- `gas_aware`: the pH head also sees the predicted gas masks (does explicit mask evidence help pH?);
- `early_fusion`: the two frames stacked as channels into one encoder (late vs early fusion);
- `single_stream`: one shared encoder, the two streams merged by a plain conv without attention (attention's worth).
All take `(co2, ch4, modality_mask)` and return the output dict of `fume_edge.labels`; a head a baseline lacks is
absent. All are export-safe: no Python branch on tensor values, pooling only through `model.pooling` or global
means, every resize bilinear with align_corners=False.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fume_edge.labels import CH4_SEG_LOGITS, CO2_SEG_LOGITS, PH_LOGITS
from fume_edge.model.fastscnn import ConvBNReLU, FastSCNNEncoder, Features, SegHead, encode_as_one_batch
from fume_edge.model.fume import classification_head
from fume_edge.model.fusion import FUMEFusion
from fume_edge.model.pooling import upsample_to
from fume_edge.model.registry import register_model

_CHANNELS = FastSCNNEncoder.HIGH_CHANNELS


def _size(x: torch.Tensor) -> tuple[int, int]:
    return int(x.shape[-2]), int(x.shape[-1])


def _mask(modality_mask: torch.Tensor, column: int) -> torch.Tensor:
    """One modality's (B,1,1,1) on/off factor, to zero a dropped stream's frame or features."""
    return modality_mask[:, column].view(-1, 1, 1, 1)


class _SharedStreams(nn.Module):
    """One encoder run on both frames as one batch; subclasses add heads. `ch4_encoder` is `co2_encoder`."""

    def __init__(self) -> None:
        super().__init__()
        self.co2_encoder = FastSCNNEncoder()
        self.ch4_encoder = self.co2_encoder

    def encode(self, co2: torch.Tensor, ch4: torch.Tensor) -> tuple[Features, Features]:
        return encode_as_one_batch(self.co2_encoder, co2, ch4)


@register_model("seg_only")
class SegOnly(_SharedStreams):
    """Segmentation-only: a seg head per gas on its own stream, no pH head. A dropped modality's frame is zeroed."""

    def __init__(self, num_classes: int = 3, num_seg_classes: int = 3) -> None:
        super().__init__()
        self.co2_seg_head = SegHead(num_seg_classes, _CHANNELS)
        self.ch4_seg_head = SegHead(num_seg_classes, _CHANNELS)

    def forward(self, co2: torch.Tensor, ch4: torch.Tensor, modality_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        co2, ch4 = co2 * _mask(modality_mask, 0), ch4 * _mask(modality_mask, 1)
        (co2_low, co2_high), (ch4_low, ch4_high) = self.encode(co2, ch4)
        return {
            CO2_SEG_LOGITS: self.co2_seg_head(co2_low, co2_high, _size(co2)),
            CH4_SEG_LOGITS: self.ch4_seg_head(ch4_low, ch4_high, _size(ch4)),
        }


@register_model("cls_only")
class ClsOnly(_SharedStreams):
    """Classification-only: FUME fusion of both streams into the pH head, no masks."""

    def __init__(self, num_classes: int = 3, num_seg_classes: int = 3) -> None:
        super().__init__()
        self.fusion = FUMEFusion(_CHANNELS)
        self.cls_head = classification_head(_CHANNELS, num_classes)

    def forward(self, co2: torch.Tensor, ch4: torch.Tensor, modality_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        (_, co2_high), (_, ch4_high) = self.encode(co2, ch4)
        return {PH_LOGITS: self.cls_head(self.fusion(co2_high, ch4_high, modality_mask))}


@register_model("gas_aware")
class GasAwareClassifier(_SharedStreams):
    """Multi-task where the pH head also sees both predicted gas-probability maps next to the fused features.

    The gas maps come from the seg logits at 1/8 scale, averaged down to the 1/32 feature grid (4×4 mean), and
    are zeroed for a dropped modality like its features are.
    """

    def __init__(self, num_classes: int = 3, num_seg_classes: int = 3, gas_class: int = 2) -> None:
        super().__init__()
        self.gas_class = gas_class
        self.fusion = FUMEFusion(_CHANNELS)
        self.co2_seg_head = SegHead(num_seg_classes, _CHANNELS)
        self.ch4_seg_head = SegHead(num_seg_classes, _CHANNELS)
        self.gas_conv = ConvBNReLU(_CHANNELS + 2, _CHANNELS, kernel_size=1)
        self.cls_head = classification_head(_CHANNELS, num_classes)

    def _gas_map(self, head: SegHead, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(seg logits at 1/8, gas probability on the 1/32 grid)."""
        logits = head.classifier(head.feature_fusion(low, high))
        gas = torch.softmax(logits, dim=1)[:, self.gas_class : self.gas_class + 1]
        gas = F.avg_pool2d(gas, kernel_size=4, stride=4, ceil_mode=True)
        return logits, upsample_to(gas, _size(high))

    def forward(self, co2: torch.Tensor, ch4: torch.Tensor, modality_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        (co2_low, co2_high), (ch4_low, ch4_high) = self.encode(co2, ch4)
        co2_logits, co2_gas = self._gas_map(self.co2_seg_head, co2_low, co2_high)
        ch4_logits, ch4_gas = self._gas_map(self.ch4_seg_head, ch4_low, ch4_high)
        fused = self.fusion(co2_high, ch4_high, modality_mask)
        gas = torch.cat([co2_gas * _mask(modality_mask, 0), ch4_gas * _mask(modality_mask, 1)], dim=1)
        return {
            PH_LOGITS: self.cls_head(self.gas_conv(torch.cat([fused, gas], dim=1))),
            CO2_SEG_LOGITS: upsample_to(co2_logits, _size(co2)),
            CH4_SEG_LOGITS: upsample_to(ch4_logits, _size(ch4)),
        }


@register_model("early_fusion")
class EarlyFusion(nn.Module):
    """The two (masked) frames stacked as a 2-channel image into one encoder; both masks and pH from it."""

    def __init__(self, num_classes: int = 3, num_seg_classes: int = 3) -> None:
        super().__init__()
        self.encoder = FastSCNNEncoder(in_ch=2)
        self.co2_seg_head = SegHead(num_seg_classes, _CHANNELS)
        self.ch4_seg_head = SegHead(num_seg_classes, _CHANNELS)
        self.cls_head = classification_head(_CHANNELS, num_classes)

    def forward(self, co2: torch.Tensor, ch4: torch.Tensor, modality_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        frames = torch.cat([co2 * _mask(modality_mask, 0), ch4 * _mask(modality_mask, 1)], dim=1)
        low, high = self.encoder(frames)
        return {
            PH_LOGITS: self.cls_head(high),
            CO2_SEG_LOGITS: self.co2_seg_head(low, high, _size(co2)),
            CH4_SEG_LOGITS: self.ch4_seg_head(low, high, _size(ch4)),
        }


@register_model("single_stream")
class SingleStream(_SharedStreams):
    """FUME without attention: shared encoder, masked streams concatenated and merged by one 3×3 conv."""

    def __init__(self, num_classes: int = 3, num_seg_classes: int = 3) -> None:
        super().__init__()
        self.fusion_conv = ConvBNReLU(2 * _CHANNELS, _CHANNELS, kernel_size=3)
        self.co2_seg_head = SegHead(num_seg_classes, _CHANNELS)
        self.ch4_seg_head = SegHead(num_seg_classes, _CHANNELS)
        self.cls_head = classification_head(_CHANNELS, num_classes)

    def forward(self, co2: torch.Tensor, ch4: torch.Tensor, modality_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        (co2_low, co2_high), (ch4_low, ch4_high) = self.encode(co2, ch4)
        streams = torch.cat([co2_high * _mask(modality_mask, 0), ch4_high * _mask(modality_mask, 1)], dim=1)
        return {
            PH_LOGITS: self.cls_head(self.fusion_conv(streams)),
            CO2_SEG_LOGITS: self.co2_seg_head(co2_low, co2_high, _size(co2)),
            CH4_SEG_LOGITS: self.ch4_seg_head(ch4_low, ch4_high, _size(ch4)),
        }
