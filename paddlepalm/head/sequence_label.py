"""SequenceLabel head: one tag per word from the encoder output at each word's first sub-word,
with a softmax or a linear-chain CRF on top."""
from typing import Dict, List, Optional

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from paddlepalm.head.base import Head, Records, dense
from paddlepalm.head.crf import LinearChainCRF
from paddlepalm.metrics import entity_f1
from paddlepalm.metrics.sequence import split_tag

OUTSIDE = "O"


class SequenceLabel(Head):
    """``SequenceLabel(num_classes, input_dim, dropout_prob=0.0, crf_lr=1.0,
    param_initializer_range=0.02, use_crf=False)``.

    Reads ``word_starts`` and ``num_words`` (and ``word_labels`` to train) from the batch. Without
    a CRF each word is classified on its own (softmax cross-entropy averaged over words); with
    ``use_crf=True`` the loss is the CRF negative log-likelihood averaged over sentences and
    decoding is Viterbi. ``crf_lr`` multiplies the learning rate of the CRF scores; PALM called it
    ``learning_rate`` (same position, also accepted by that name) with default 1e-3, which left
    the transitions nearly frozen -- raise it (e.g. 100) for them to learn at fine-tuning rates.

    Inputs a reader split into windows (``window_stride``) are merged back: each word's logits
    come from the window where it is most central, so loss, decoding and metrics are per word of
    the whole input.

    ``epoch_postprocess`` writes ``predictions.json`` lines ``{"index", "words", "labels",
    "label_ids"}`` (words cut by ``max_len`` get ``'O'``) and, with gold tags, returns entity
    ``f1``/``precision``/``recall`` (BIO, or BIOES when tags use ``E-``/``S-``) and
    ``token_accuracy``, all over every word of the file.
    """

    name = "sequence_label"
    label_fields = ("word_labels",)
    metric_names = ("f1", "precision", "recall", "token_accuracy")

    def __init__(self, num_classes: int, input_dim: int, dropout_prob: float = 0.0,
                 crf_lr: float = 1.0, param_initializer_range: float = 0.02, use_crf: bool = False,
                 phase: str = "train", learning_rate: Optional[float] = None):
        super().__init__(phase)
        self.num_classes = int(num_classes)
        self.dropout = nn.Dropout(dropout_prob)
        self.classifier = dense(input_dim, self.num_classes, param_initializer_range)
        self.use_crf = use_crf
        lr = crf_lr if learning_rate is None else learning_rate
        self.crf = LinearChainCRF(self.num_classes, lr) if use_crf else None

    def forward(self, encoder_output, batch):
        hidden = gather_positions(encoder_output.sequence_output, batch["word_starts"])
        logits = self.classifier(self.dropout(hidden))
        if "chunk_rows" in batch:  # windows of long inputs -> one row of word logits per input
            logits = merge_windows(logits, batch["chunk_rows"], batch["word_chunk"], batch["word_slot"])
        out = {"logits": logits}
        if "word_labels" in batch:
            mask = word_mask(batch, logits.shape[1])
            labels = batch["word_labels"]
            if self.crf is not None:
                out["loss"] = self.crf.nll(logits, labels, mask).mean()
            else:
                per_word = F.cross_entropy(logits, paddle.where(mask, labels, paddle.zeros_like(labels))
                                           .unsqueeze(-1), reduction="none").squeeze(-1)
                maskf = mask.astype(per_word.dtype)
                out["loss"] = (per_word * maskf).sum() / maskf.sum().clip(min=1.0)
        return out

    def batch_postprocess(self, outputs, batch) -> Records:
        logits = outputs["logits"]
        lengths = (batch["num_words"] if "num_words" in batch
                   else (batch["word_labels"] != -100).sum(axis=1))
        if self.crf is not None:
            paths = self.crf.decode(logits, lengths)
        else:
            paths = [row[:int(n)].argmax(axis=-1).tolist() for row, n in zip(logits, lengths)]
        records = []
        for i, fi in enumerate(batch["feature_index"]):
            r = {"feature_index": int(fi), "label_ids": paths[i]}
            if "word_labels" in batch:
                r["gold"] = batch["word_labels"][i, :len(paths[i])].tolist()
            records.append(r)
        return records

    def predictions(self, records: Records, reader) -> Records:
        names = reader.label_vocab() if reader is not None else None
        features = _features(reader)
        outside = names.index(OUTSIDE) if names and OUTSIDE in names else -1
        rows = []
        for r in sorted(records, key=lambda r: r["feature_index"]):
            row = {"index": r["feature_index"]}
            ids = list(r["label_ids"])
            words = features[r["feature_index"]].get("words") if features else None
            if words is not None:
                row["words"] = words
                ids += [outside] * (len(words) - len(ids))  # words cut by max_len
            if names:
                row["labels"] = [names[i] if i >= 0 else OUTSIDE for i in ids]
            row["label_ids"] = ids
            rows.append(row)
        return rows

    def epoch_postprocess(self, records: Records, reader, output_dir: Optional[str] = None) -> Dict[str, float]:
        rows = self.predictions(records, reader)
        if output_dir:
            self.write_jsonl(rows, output_dir)
        if not records or "gold" not in records[0]:
            return {}
        features = _features(reader)
        if features and "tags" in features[0] and "labels" in rows[0]:
            # every word of the file, gold tags as written (also tags the model never saw)
            return sequence_metrics([features[row["index"]]["tags"] for row in rows],
                                    [row["labels"] for row in rows])
        ordered = sorted(records, key=lambda r: r["feature_index"])  # the words kept in max_len
        names = reader.label_vocab() if reader is not None else None
        golds, preds = [r["gold"] for r in ordered], [r["label_ids"] for r in ordered]
        if names:
            golds, preds = ([[names[i] for i in seq] for seq in ids] for ids in (golds, preds))
        return sequence_metrics(golds, preds)


def _features(reader) -> Optional[List[dict]]:
    return reader.get_epoch_outputs().get("features") if reader is not None else None


def gather_positions(sequence: paddle.Tensor, positions: paddle.Tensor) -> paddle.Tensor:
    """``sequence[b, positions[b, w]]``: ``[B, L, H]`` and ``[B, W]`` -> ``[B, W, H]``."""
    batch, length, hidden = sequence.shape
    offsets = (paddle.arange(batch, dtype=positions.dtype) * length).unsqueeze(1)
    flat = paddle.gather(sequence.reshape([-1, hidden]), (positions + offsets).reshape([-1]))
    return flat.reshape([batch, -1, hidden])


def merge_windows(window_logits: paddle.Tensor, chunk_rows: paddle.Tensor, word_chunk: paddle.Tensor,
                  word_slot: paddle.Tensor) -> paddle.Tensor:
    """Per-window word logits ``[rows, W_win, C]`` -> per-input ``[D, W, C]``: word ``w`` of input
    ``d`` from row ``chunk_rows[d, word_chunk[d, w]]`` at word position ``word_slot[d, w]``."""
    rows = paddle.take_along_axis(chunk_rows, word_chunk, axis=1)
    return paddle.gather_nd(window_logits, paddle.stack([rows, word_slot], axis=-1))


def word_mask(batch: Dict[str, paddle.Tensor], width: int) -> paddle.Tensor:
    """``[B, W]`` bool: real words, from ``num_words`` (else from ``word_labels != -100``)."""
    if "num_words" in batch:
        return paddle.arange(width, dtype="int64").unsqueeze(0) < batch["num_words"].reshape([-1, 1])
    return batch["word_labels"] != -100


def tag_scheme(tags: List[str]) -> Optional[str]:
    """'BIOES' if any tag uses ``E-``/``S-``, 'BIO' if all tags are BIO, None otherwise."""
    scheme = "BIOES" if any(t[:2] in ("E-", "S-") for t in tags) else "BIO"
    try:
        for t in tags:
            split_tag(t, scheme)
    except ValueError:
        return None
    return scheme


def sequence_metrics(golds: List[list], preds: List[list]) -> Dict[str, float]:
    """Token accuracy and, for tag names in BIO/BIOES, entity precision/recall/F1."""
    pairs = [(g, p) for gold, pred in zip(golds, preds) for g, p in zip(gold, pred)]
    metrics = {"token_accuracy": float(np.mean([g == p for g, p in pairs])) if pairs else 0.0}
    names = sorted({str(t) for seq in golds + preds for t in seq})
    scheme = tag_scheme(names) if all(isinstance(t, str) for seq in golds for t in seq) else None
    if scheme is not None:
        scores = entity_f1(golds, preds, scheme=scheme)
        metrics.update(f1=scores["f1"], precision=scores["precision"], recall=scores["recall"])
    return metrics
