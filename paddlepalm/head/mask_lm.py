"""MaskLM head: predicts the tokens at masked positions through the encoder's own word embeddings."""
import math
from typing import Dict, Optional

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from paddlepalm.backbone.encoder import _activation
from paddlepalm.head.base import Head, Records, dense

IGNORE = -100


class MaskLM(Head):
    """``MaskLM(input_dim, vocab_size, hidden_act='gelu', dropout_prob=0.0, ...)``.

    Transform (Linear + activation + LayerNorm), then the output projection TIED to the
    backbone's word embeddings (set by :meth:`attach_backbone`) plus this head's own bias.
    Logits are computed only at the positions in ``mlm_mask``; the loss is the cross-entropy at
    those with a label (``mlm_labels != -100``).
    """

    name = "mask_lm"
    label_fields = ("mlm_labels",)
    metric_names = ("accuracy", "perplexity")

    def __init__(self, input_dim: int, vocab_size: int, hidden_act: str = "gelu",
                 dropout_prob: float = 0.0, param_initializer_range: float = 0.02,
                 phase: str = "train"):
        super().__init__(phase)
        self.vocab_size = int(vocab_size)
        self.dropout = nn.Dropout(dropout_prob)
        self.transform = dense(input_dim, input_dim, param_initializer_range)
        self.activation = _activation(hidden_act)
        self.layer_norm = nn.LayerNorm(input_dim)
        self.output_bias = self.create_parameter([self.vocab_size], is_bias=True,
                                                 default_initializer=nn.initializer.Constant(0.0))

    def attach_backbone(self, backbone) -> None:
        rows = backbone.embeddings.word_embeddings.weight.shape[0]
        if rows != self.vocab_size:
            raise ValueError("MaskLM(vocab_size=%d) does not match the backbone's %d word embeddings"
                             % (self.vocab_size, rows))
        super().attach_backbone(backbone)

    def word_logits(self, hidden: paddle.Tensor) -> paddle.Tensor:
        """Hidden states ``[N, H]`` -> vocabulary logits ``[N, V]`` via the tied embeddings."""
        if self.backbone is None:
            raise RuntimeError("MaskLM needs the encoder's word embeddings: call attach_backbone(backbone)")
        h = self.layer_norm(self.activation(self.transform(self.dropout(hidden))))
        weight = self.backbone.embeddings.word_embeddings.weight
        return paddle.matmul(h, weight, transpose_y=True) + self.output_bias

    def forward(self, encoder_output, batch):
        sequence = encoder_output.sequence_output
        hidden_size = sequence.shape[-1]
        positions = paddle.nonzero(batch["mlm_mask"].reshape([-1])).reshape([-1])  # flat b*L+p
        logits = self.word_logits(paddle.gather(sequence.reshape([-1, hidden_size]), positions))
        out = {"positions": positions, "word_ids": paddle.argmax(logits, axis=-1)}
        if "mlm_labels" in batch:
            labels = paddle.gather(batch["mlm_labels"].reshape([-1]), positions)
            labelled = (labels != IGNORE).astype(logits.dtype)
            nll = F.cross_entropy(logits, paddle.where(labels == IGNORE, paddle.zeros_like(labels), labels)
                                  .reshape([-1, 1]), reduction="none").reshape([-1]) * labelled
            out["loss"] = nll.sum() / paddle.clip(labelled.sum(), min=1.0)
            out["labels"], out["nll"] = labels, nll
        return out

    def batch_postprocess(self, outputs, batch) -> Records:
        """One record per row: its predicted positions, top-1 ids and (if known) gold ids."""
        width = batch["input_ids"].shape[1]
        rows = outputs["positions"] // width
        records = []
        for i, fi in enumerate(batch["feature_index"]):
            sel = rows == i
            r = {"feature_index": int(fi), "positions": (outputs["positions"][sel] % width).tolist(),
                 "word_ids": outputs["word_ids"][sel].tolist()}
            if "labels" in outputs:
                r["gold"] = outputs["labels"][sel].tolist()
                r["nll"] = outputs["nll"][sel].tolist()
            records.append(r)
        return records

    def predictions(self, records: Records, reader) -> Records:
        """Per row: ``{index, positions, word_ids, tokens}`` (tokens when the reader has a tokenizer)."""
        tokenizer = getattr(reader, "tokenizer", None)
        rows = []
        for r in sorted(records, key=lambda r: r["feature_index"]):
            row = {"index": r["feature_index"], "positions": r["positions"], "word_ids": r["word_ids"]}
            if tokenizer is not None:
                row["tokens"] = tokenizer.convert_ids_to_tokens(r["word_ids"])
            rows.append(row)
        return rows

    def epoch_postprocess(self, records: Records, reader,
                          output_dir: Optional[str] = None) -> Dict[str, float]:
        if output_dir:
            self.write_jsonl(self.predictions(records, reader), output_dir)
        labelled = [r for r in records if "gold" in r]
        gold = np.array([g for r in labelled for g in r["gold"]], dtype=np.int64)
        if not (gold != IGNORE).any():
            return {}
        pred = np.array([w for r in labelled for w in r["word_ids"]], dtype=np.int64)
        nll = np.array([n for r in labelled for n in r["nll"]], dtype=np.float64)
        known = gold != IGNORE
        return {"accuracy": float((pred[known] == gold[known]).mean()),
                "perplexity": float(math.exp(nll[known].mean()))}
