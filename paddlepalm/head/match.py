"""Match head: text-pair classification (pointwise) or ranking with a hinge loss (pairwise)."""
from typing import Dict, Optional

import numpy as np
import paddle.nn.functional as F

from paddlepalm.head.base import Records
from paddlepalm.head.classify import Classify

STRATEGIES = ("pointwise", "pairwise")


class Match(Classify):
    """``Match(num_classes, input_dim, dropout_prob=0.0, param_initializer_range=0.02,
    learning_strategy='pointwise', margin=0.5)``.

    * pointwise: :class:`Classify` on the pair's pooled output (softmax cross-entropy; metrics
      accuracy and macro F1; predictions ``{"index", "label", "logits", "probs"}``).
    * pairwise: ``score`` = one linear unit on the pooled output; on batches of triples
      (``pair_rows`` = B, rows ``0..B-1`` positive, ``B..2B-1`` negative) the loss is
      ``mean(max(0, margin - s_pos + s_neg))`` and the metric ``pairwise_accuracy`` is the share
      with ``s_pos > s_neg``. Predictions ``{"index", "score", "probs"}`` (``probs`` =
      sigmoid(score), for PALM scripts; plus ``score_neg`` on triples). ``num_classes`` is unused.

    ``representation``, ``last_layers`` and ``chunk_pooling`` are as in :class:`Classify` (a long
    ``text_b`` split into chunks by the reader is scored as one document, pointwise).
    """

    name = "match"

    def __init__(self, num_classes: int, input_dim: int, dropout_prob: float = 0.0,
                 param_initializer_range: float = 0.02, learning_strategy: str = "pointwise",
                 margin: float = 0.5, phase: str = "train", representation: str = "pooled",
                 last_layers: int = 4, chunk_pooling: str = "mean"):
        if learning_strategy not in STRATEGIES:
            raise ValueError("learning_strategy must be 'pointwise' or 'pairwise', got %r"
                             % (learning_strategy,))
        self.pairwise = learning_strategy == "pairwise"
        super().__init__(1 if self.pairwise else num_classes, input_dim, dropout_prob,
                         param_initializer_range, phase=phase, representation=representation,
                         last_layers=last_layers, chunk_pooling=chunk_pooling)
        self.learning_strategy = learning_strategy
        self.margin = float(margin)
        if self.pairwise:
            self.label_fields = ("pair_rows",)
            self.metric_names = ("pairwise_accuracy",)

    def forward(self, encoder_output, batch):
        if not self.pairwise:
            return super().forward(encoder_output, batch)
        score = self.classifier(self.dropout(self.encoding(encoder_output, batch))).squeeze(-1)
        out = {"score": score, "probs": F.sigmoid(score)}
        if "pair_rows" in batch:
            rows = int(batch["pair_rows"])
            positive, negative = score[:rows], score[rows:]
            out["loss"] = F.relu(self.margin - positive + negative).mean()
        return out

    def batch_postprocess(self, outputs, batch) -> Records:
        if not self.pairwise:
            return super().batch_postprocess(outputs, batch)
        score = outputs["score"]
        rows = len(batch["feature_index"])
        records = []
        for i, fi in enumerate(batch["feature_index"]):
            r = {"feature_index": int(fi), "score": float(score[i])}
            if "pair_rows" in batch:
                r["score_neg"] = float(score[rows + i])
            records.append(r)
        return records

    def predictions(self, records: Records, reader) -> Records:
        if not self.pairwise:
            return super().predictions(records, reader)
        rows = []
        for r in sorted(records, key=lambda r: r["feature_index"]):
            row = {"index": r["feature_index"], "score": r["score"],
                   "probs": float(1.0 / (1.0 + np.exp(-r["score"])))}
            if "score_neg" in r:
                row["score_neg"] = r["score_neg"]
            rows.append(row)
        return rows

    def epoch_postprocess(self, records: Records, reader, output_dir: Optional[str] = None) -> Dict[str, float]:
        if not self.pairwise:
            return super().epoch_postprocess(records, reader, output_dir)
        if output_dir:
            self.write_jsonl(self.predictions(records, reader), output_dir)
        if not records or "score_neg" not in records[0]:
            return {}
        return {"pairwise_accuracy": float(np.mean([r["score"] > r["score_neg"] for r in records]))}
