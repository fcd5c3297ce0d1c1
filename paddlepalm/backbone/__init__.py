"""Backbones: one BERT-family encoder exposed as ERNIE, BERT, RoBERTa and NEZHA; and Canine."""
from paddlepalm.backbone.canine import Canine
from paddlepalm.backbone.config import CanineConfig, EncoderConfig, load_config
from paddlepalm.backbone.encoder import Encoder, EncoderOutput
from paddlepalm.backbone.families import (BERT, ERNIE, FAMILIES, NEZHA, RoBERTa, build_encoder,
                                         convert_checkpoint)
from paddlepalm.backbone.weights import LoadReport, detect_layout, read_checkpoint

__all__ = ["ERNIE", "BERT", "RoBERTa", "NEZHA", "Canine", "CanineConfig", "load_config", "Encoder",
           "EncoderConfig", "EncoderOutput", "FAMILIES", "build_encoder", "convert_checkpoint", "detect_layout", "read_checkpoint", "LoadReport"]

from paddlepalm.registry import BACKBONES as _BACKBONES  # noqa: E402

for _name, _cls in FAMILIES.items():
    _BACKBONES.register(_name, _cls)
