"""MRC head: token start/end logits for extractive QA, and span decoding back to the context text."""
import json
import logging
import os
from typing import Dict, List, Optional

import numpy as np
import paddle
import paddle.nn.functional as F

from paddlepalm.head.base import Head, Records, dense
from paddlepalm.metrics import squad_scores

logger = logging.getLogger("paddlepalm")
MASKED_LOGIT = -1e4


class MRC(Head):
    """``MRC(max_query_len, input_dim, ...)``: a Linear(input_dim, 2) over every token.

    Loss: mean of the start and end cross-entropies. At inference the logits of non-context
    tokens are masked. :meth:`epoch_postprocess` writes ``predictions.json`` (qid -> answer text),
    ``nbest_predictions.json`` and, with ``with_negative``, ``null_odds.json``.
    """

    name = "mrc"
    label_fields = ("start_positions", "end_positions")
    metric_names = ("f1", "exact_match")

    def __init__(self, max_query_len: int, input_dim: int, pred_output_path: Optional[str] = None,
                 verbose: bool = False, with_negative: bool = False, do_lower_case: bool = False,
                 max_ans_len: Optional[int] = None, null_score_diff_threshold: float = 0.0,
                 n_best_size: int = 20, phase: str = "train"):
        super().__init__(phase)
        self.max_query_len = max_query_len
        self.pred_output_path = pred_output_path
        self.verbose = verbose
        self.with_negative = with_negative
        self.do_lower_case = do_lower_case  # kept for PALM: answers come from offsets, not tokens
        self.max_ans_len = 30 if max_ans_len is None else int(max_ans_len)
        self.null_score_diff_threshold = null_score_diff_threshold
        self.n_best_size = int(n_best_size)
        self.span_classifier = dense(input_dim, 2)

    def forward(self, encoder_output, batch):
        logits = self.span_classifier(encoder_output.sequence_output)  # [B, L, 2]
        start_logits, end_logits = logits[:, :, 0], logits[:, :, 1]
        out = {"null_score": start_logits[:, 0] + end_logits[:, 0]}
        if self.has_labels(batch):
            start_loss = F.cross_entropy(start_logits, batch["start_positions"].reshape([-1, 1]))
            end_loss = F.cross_entropy(end_logits, batch["end_positions"].reshape([-1, 1]))
            out["loss"] = (start_loss + end_loss) / 2
        if "context_start" in batch:
            positions = paddle.arange(start_logits.shape[1], dtype="int64").unsqueeze(0)
            inside = (positions >= batch["context_start"].reshape([-1, 1])) & \
                     (positions < batch["context_end"].reshape([-1, 1]))
            masked = paddle.full_like(start_logits, MASKED_LOGIT)
            start_logits = paddle.where(inside, start_logits, masked)
            end_logits = paddle.where(inside, end_logits, masked)
        out["start_logits"], out["end_logits"] = start_logits, end_logits
        return out

    def batch_postprocess(self, outputs, batch) -> Records:
        """One record per window: logits of its context tokens only."""
        records = []
        for i, fi in enumerate(batch["feature_index"]):
            lo, hi = int(batch["context_start"][i]), int(batch["context_end"][i])
            records.append({"feature_index": int(fi), "example_index": int(batch["example_index"][i]),
                            "start_logits": outputs["start_logits"][i, lo:hi].tolist(),
                            "end_logits": outputs["end_logits"][i, lo:hi].tolist(),
                            "null_score": float(outputs["null_score"][i])})
        return records

    # ------------------------------------------------------------------ decoding
    def predictions(self, records: Records, reader) -> Records:
        """One answer per question, in input order: ``{id, text, nbest[, null_odds]}``."""
        if reader is None or not reader.features:
            raise ValueError("MRC needs the reader that produced the records to decode answers")
        by_example: Dict[int, Records] = {}
        for r in records:
            by_example.setdefault(r["example_index"], []).append(r)
        answers = []
        for index in sorted(by_example):
            example = reader.examples[index]
            windows = [(r, reader.features[r["feature_index"]]) for r in by_example[index]]
            nbest = self._nbest(example["context"], windows)
            answer = {"id": example["qid"], "text": nbest[0]["text"], "nbest": nbest}
            if self.with_negative:
                null = min(r["null_score"] for r in by_example[index])
                best = next((c["start_logit"] + c["end_logit"] for c in nbest if c["text"]), null)
                answer["null_odds"] = null - best
                if answer["null_odds"] > self.null_score_diff_threshold:
                    answer["text"] = ""
            answers.append(answer)
        return answers

    def epoch_postprocess(self, records: Records, reader,
                          output_dir: Optional[str] = None) -> Dict[str, float]:
        answers = self.predictions(records, reader)
        predictions = {a["id"]: a["text"] for a in answers}
        output_dir = output_dir or self.pred_output_path
        if output_dir:
            _write_json(predictions, output_dir, "predictions.json")
            _write_json({a["id"]: a["nbest"] for a in answers}, output_dir, "nbest_predictions.json")
            if self.with_negative:
                _write_json({a["id"]: a["null_odds"] for a in answers}, output_dir, "null_odds.json")
        seen = set(predictions)
        references = {e["qid"]: [a["text"] for a in e["answers"]] for e in reader.examples
                      if e["qid"] in seen and e["answers"]}
        if not references:
            return {}
        lang = "zh" if getattr(reader, "lang", "en") in ("zh", "cn") else "en"
        scores = squad_scores(predictions, references, lang)
        if self.verbose:
            logger.info("MRC: %d questions, EM %.2f, F1 %.2f", scores["count"], scores["exact_match"],
                        scores["f1"])
        return {"exact_match": scores["exact_match"], "f1": scores["f1"]}

    def _nbest(self, context: str, windows) -> List[dict]:
        """The ``n_best_size`` best distinct answer texts over all windows of one question."""
        spans = {}
        for record, feature in windows:
            starts = np.asarray(record["start_logits"])
            ends = np.asarray(record["end_logits"])
            offsets, max_context = feature["token_offsets"], feature["max_context"]
            for s in np.argsort(-starts)[:self.n_best_size]:
                if not max_context[s]:
                    continue
                for e in np.argsort(-ends)[:self.n_best_size]:
                    if e < s or e - s + 1 > self.max_ans_len:
                        continue
                    char_span = (offsets[s][0], offsets[e][1])
                    score = float(starts[s] + ends[e])
                    if char_span not in spans or score > spans[char_span][0]:
                        spans[char_span] = (score, float(starts[s]), float(ends[e]))
        best_by_text = {}
        for (a, b), (score, start_logit, end_logit) in spans.items():
            text = context[a:b]
            if text not in best_by_text or score > best_by_text[text][0]:
                best_by_text[text] = (score, start_logit, end_logit)
        ranked = sorted(best_by_text.items(), key=lambda kv: -kv[1][0])[:self.n_best_size]
        if not ranked:
            return [{"text": "", "probability": 1.0, "start_logit": 0.0, "end_logit": 0.0}]
        scores = np.array([v[0] for _, v in ranked])
        probs = np.exp(scores - scores.max())
        probs /= probs.sum()
        return [{"text": text, "probability": float(p), "start_logit": s, "end_logit": e}
                for (text, (_, s, e)), p in zip(ranked, probs)]


def _write_json(obj, output_dir: str, filename: str) -> str:
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, filename)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=2)
    os.replace(path + ".tmp", path)
    return path
