"""Backbones: one BERT-family encoder exposed as ERNIE, BERT and RoBERTa."""
from paddlepalm.backbone.config import EncoderConfig
from paddlepalm.backbone.encoder import Encoder, EncoderOutput
from paddlepalm.backbone.families import (BERT, ERNIE, FAMILIES, RoBERTa, build_encoder,
                                         convert_checkpoint)
from paddlepalm.backbone.weights import LoadReport, detect_layout, read_checkpoint

__all__ = ["ERNIE", "BERT", "RoBERTa", "Encoder", "EncoderConfig", "EncoderOutput", "FAMILIES",
           "build_encoder", "convert_checkpoint", "detect_layout", "read_checkpoint", "LoadReport"]

from paddlepalm.registry import BACKBONES as _BACKBONES  # noqa: E402

for _name, _cls in FAMILIES.items():
    _BACKBONES.register(_name, _cls)
