"""The Head base class: task output layers on top of the shared encoder.

A head is a ``paddle.nn.Layer``. The trainer calls ``head(encoder_output, batch)`` and reads
``'loss'`` from the returned dict when the batch carries labels. At inference the trainer turns
each batch's outputs into per-example records with :meth:`Head.batch_postprocess` and, at the end
of an epoch, :meth:`Head.epoch_postprocess` computes metrics (when gold labels exist) and writes
``predictions.json``.
"""
import json
import os
from typing import Any, Dict, List, Optional

import numpy as np
import paddle
import paddle.nn as nn

from paddlepalm.backbone.encoder import EncoderOutput
from paddlepalm.utils.init_args import record_init_args

Records = List[Dict[str, Any]]


class Head(nn.Layer):
    """Base class of task heads."""

    name: Optional[str] = None  # registry name, e.g. 'classify'
    label_fields: tuple = ("label",)  # batch fields holding gold labels
    metric_names: tuple = ()  # what epoch_postprocess reports; the first is the default objective

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        record_init_args(cls)

    def __init__(self, phase: str = "train"):
        super().__init__()
        self.phase = phase
        self._backbone_ref: list = []
        self._results: Records = []

    # ------------------------------------------------------------------ to implement
    def forward(self, encoder_output: EncoderOutput, batch: Dict[str, paddle.Tensor]) -> Dict[str, paddle.Tensor]:
        raise NotImplementedError

    def batch_postprocess(self, outputs: Dict[str, np.ndarray], batch: Dict[str, np.ndarray]) -> Records:
        """Numpy outputs of one batch -> one record per row (must carry ``feature_index``)."""
        raise NotImplementedError

    def predictions(self, records: Records, reader) -> Records:
        """Records -> user-facing predictions, one per example, in input order."""
        return sorted(records, key=lambda r: r["feature_index"])

    def epoch_postprocess(self, records: Records, reader, output_dir: Optional[str] = None) -> Dict[str, float]:
        """All records of an epoch -> metrics (if gold labels exist); writes predictions."""
        if output_dir:
            self.write_jsonl(self.predictions(records, reader), output_dir)
        return {}

    def encoder_options(self) -> Dict[str, bool]:
        """Extra encoder call options this head needs, e.g. ``{"output_hidden_states": True}``."""
        return {}

    # ------------------------------------------------------------------ helpers
    def attach_backbone(self, backbone) -> None:
        """Called once by the trainer; heads that need the encoder (tied embeddings) keep it."""
        self._backbone_ref = [backbone]  # a list: not registered as a sub-layer

    @property
    def backbone(self):
        return self._backbone_ref[0] if self._backbone_ref else None

    def has_labels(self, batch) -> bool:
        return all(f in batch for f in self.label_fields)

    @staticmethod
    def write_jsonl(records: Records, output_dir: str, filename: str = "predictions.json") -> str:
        os.makedirs(output_dir, exist_ok=True)
        path = os.path.join(output_dir, filename)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
        return path

    # PALM 2.x compatibility: results buffered between predict batches
    def reset(self) -> None:
        self._results = []

    def get_results(self) -> Records:
        return self._results

    @property
    def inputs_attrs(self) -> Dict[str, Dict[str, list]]:
        return {"reader": {f: [[-1], "int64"] for f in self.label_fields},
                "backbone": {"sequence_output": [[-1, -1, -1], "float32"],
                             "pooled_output": [[-1, -1], "float32"]}}


def dense(in_dim: int, out_dim: int, init_range: float = 0.02) -> nn.Linear:
    """A Linear layer initialised like the encoder's (truncated-normal-ish, std=init_range)."""
    return nn.Linear(in_dim, out_dim, weight_attr=paddle.ParamAttr(
        initializer=nn.initializer.TruncatedNormal(std=init_range)))
