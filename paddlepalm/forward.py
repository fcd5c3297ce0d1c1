"""The one forward path shared by training, evaluation, prediction and export:
batch (numpy) -> tensors -> shared encoder -> task head."""
from typing import Dict, Optional

import numpy as np
import paddle

ENCODER_INPUTS = ("input_ids", "token_type_ids", "attention_mask", "task_type_ids", "position_ids")
NON_TENSOR_FIELDS = ("example_index", "feature_index")


def to_tensors(batch: Dict[str, np.ndarray]) -> Dict[str, paddle.Tensor]:
    """Numpy batch -> Paddle tensors (bookkeeping fields stay numpy)."""
    return {k: (v if k in NON_TENSOR_FIELDS or not isinstance(v, np.ndarray) else paddle.to_tensor(v))
            for k, v in batch.items()}


def encoder_inputs(batch: Dict[str, paddle.Tensor], backbone) -> Dict[str, paddle.Tensor]:
    """The batch fields the encoder reads (token types only when it has token-type embeddings)."""
    cfg = backbone.config
    wanted = {"input_ids", "attention_mask", "position_ids"}
    if cfg.type_vocab_size > 0:
        wanted.add("token_type_ids")
    if cfg.use_task_type:
        wanted.add("task_type_ids")
    return {k: batch[k] for k in ENCODER_INPUTS if k in wanted and k in batch}


# options that narrow what the encoder computes: on only when EVERY head reading the pass asks
NARROWING_OPTIONS = ("first_token_only",)


def head_encoder_options(heads, extra: Optional[Dict[str, bool]] = None, backbone=None) -> Dict[str, bool]:
    """What the heads ask of the encoder call (their ``encoder_options()``, e.g.
    ``output_hidden_states``), with ``extra``; an option any of them turns on is on.

    ``first_token_only`` (a head that reads [CLS] only) is the exception: it is passed only when
    every head asks for it, ``extra`` neither names it nor asks for anything (a distiller asking
    for hidden states or attentions reads every position), and ``backbone`` declares
    ``accepts_first_token_only``."""
    options: Dict[str, bool] = dict(extra or {})
    asked = [head.encoder_options() if hasattr(head, "encoder_options") else {} for head in heads]
    for ask in asked:
        for name, value in ask.items():
            if name not in NARROWING_OPTIONS:
                options[name] = bool(options.get(name)) or bool(value)
    outside_asks = any(v for k, v in (extra or {}).items() if k not in NARROWING_OPTIONS)
    for name in NARROWING_OPTIONS:
        if name in options or outside_asks:
            continue
        if heads and all(ask.get(name) for ask in asked) and getattr(backbone, "accepts_" + name, False):
            options[name] = True
    return {k: v for k, v in options.items() if v or k not in NARROWING_OPTIONS}  # no False for backbones without it


def run_task(backbone, head, batch: Dict[str, paddle.Tensor]) -> Dict[str, paddle.Tensor]:
    """Encoder then head; returns the head's outputs (with ``'loss'`` when labels are present).

    The encoder also gets the head's ``encoder_options()`` (e.g. ``output_hidden_states``)."""
    return head(backbone(**encoder_inputs(batch, backbone), **head_encoder_options([head], backbone=backbone)),
                batch)


def outputs_to_numpy(outputs: Dict[str, paddle.Tensor]) -> Dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in outputs.items() if k != "loss" and isinstance(v, paddle.Tensor)}
