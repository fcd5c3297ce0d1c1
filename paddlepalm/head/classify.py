"""Classify head: a sentence (or whole-document) vector -> logits; softmax cross-entropy or
multi-label sigmoid."""
from typing import Dict, Optional

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from paddlepalm.head.base import Head, Records, dense
from paddlepalm.head.pooling import SentenceEncoding
from paddlepalm.metrics import accuracy, multilabel_precision_recall_f1, precision_recall_f1


class Classify(Head):
    """``Classify(num_classes, input_dim, dropout_prob=0.0, param_initializer_range=0.02)``.

    ``multi_label=True`` scores each class independently (sigmoid + binary cross-entropy) and
    predicts every class whose probability exceeds ``threshold``.

    ``representation`` picks the sentence vector (see :mod:`paddlepalm.head.pooling`): ``pooled``
    (default, the encoder's pooler), ``cls``, ``mean_tokens``, or ``concat_layers`` /
    ``mean_layers`` / ``max_layers`` over the last ``last_layers`` layers' [CLS]. For documents
    a reader split into chunks (``max_chunks``), ``chunk_pooling`` (``mean``, ``max``,
    ``attention``) combines the chunk vectors into one per document.
    """

    name = "classify"
    metric_names = ("accuracy", "macro_f1")

    def __init__(self, num_classes: int, input_dim: int, dropout_prob: float = 0.0,
                 param_initializer_range: float = 0.02, multi_label: bool = False,
                 threshold: float = 0.5, phase: str = "train", representation: str = "pooled",
                 last_layers: int = 4, chunk_pooling: str = "mean"):
        super().__init__(phase)
        self.num_classes = int(num_classes)
        self.multi_label = multi_label
        self.threshold = threshold
        self.encoding = SentenceEncoding(input_dim, representation, last_layers, chunk_pooling,
                                         param_initializer_range)
        self.dropout = nn.Dropout(dropout_prob)
        self.classifier = dense(self.encoding.dim, self.num_classes, param_initializer_range)
        if multi_label:
            self.metric_names = ("micro_f1", "macro_f1", "subset_accuracy")

    def encoder_options(self):
        return self.encoding.encoder_options()

    def forward(self, encoder_output, batch):
        logits = self.classifier(self.dropout(self.encoding(encoder_output, batch)))
        out = {"logits": logits}
        if "label" in batch:
            label = batch["label"]
            if self.multi_label:
                out["loss"] = F.binary_cross_entropy_with_logits(logits, label.astype(logits.dtype))
            else:
                out["loss"] = F.cross_entropy(logits, label.reshape([-1, 1]))
        out["probs"] = F.sigmoid(logits) if self.multi_label else F.softmax(logits, axis=-1)
        return out

    def batch_postprocess(self, outputs, batch) -> Records:
        records = []
        for i, fi in enumerate(batch["feature_index"]):
            probs = outputs["probs"][i]
            r = {"feature_index": int(fi), "logits": outputs["logits"][i].tolist(),
                 "probs": probs.tolist()}
            if self.multi_label:
                r["label"] = [int(j) for j in np.nonzero(probs > self.threshold)[0]]
            else:
                r["label"] = int(np.argmax(probs))
            if "label" in batch:
                gold = batch["label"][i]
                r["gold"] = [int(j) for j in np.nonzero(gold > 0.5)[0]] if self.multi_label else int(gold)
            records.append(r)
        return records

    def predictions(self, records: Records, reader) -> Records:
        names = reader.label_vocab() if reader is not None else None
        out = []
        for r in sorted(records, key=lambda r: r["feature_index"]):
            row = {"index": r["feature_index"], "label": r["label"], "logits": r["logits"], "probs": r["probs"]}
            if names:
                row["label_name"] = ([names[j] for j in r["label"]] if self.multi_label
                                     else names[r["label"]])
            out.append(row)
        return out

    def epoch_postprocess(self, records: Records, reader, output_dir: Optional[str] = None) -> Dict[str, float]:
        if output_dir:
            self.write_jsonl(self.predictions(records, reader), output_dir)
        if not records or "gold" not in records[0]:
            return {}
        if self.multi_label:
            pred = np.zeros((len(records), self.num_classes), dtype=int)
            gold = np.zeros_like(pred)
            for k, r in enumerate(records):
                pred[k, r["label"]] = 1
                gold[k, r["gold"]] = 1
            micro = multilabel_precision_recall_f1(pred, gold, average="micro")
            macro = multilabel_precision_recall_f1(pred, gold, average="macro")
            return {"micro_f1": micro["f1"], "macro_f1": macro["f1"],
                    "subset_accuracy": float((pred == gold).all(axis=1).mean())}
        preds = [r["label"] for r in records]
        golds = [r["gold"] for r in records]
        return {"accuracy": accuracy(preds, golds),
                "macro_f1": precision_recall_f1(preds, golds, average="macro")["f1"]}
