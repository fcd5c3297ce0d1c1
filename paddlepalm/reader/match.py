"""MatchReader: text pairs, scored pointwise (a label per pair) or pairwise (a positive and a
negative text_b per text_a)."""
from typing import Dict, List, Optional

import numpy as np

from paddlepalm.reader.base import Example
from paddlepalm.reader.batching import Batch, Feature, pad_batch
from paddlepalm.reader.classify import ClassifyReader

STRATEGIES = ("pointwise", "pairwise")
PAIR_FIELDS = ("input_ids", "token_type_ids")


class MatchReader(ClassifyReader):
    """Text-pair matching.

    * ``learning_strategy='pointwise'``: columns ``label``, ``text_a``, ``text_b``; labels as in
      :class:`ClassifyReader` (PALM integers or names with a ``label_map``).
    * ``'pairwise'``: columns ``text_a``, ``text_b`` (positive), ``text_b_neg`` (negative), no
      label. A batch of B triples is one encoder batch of 2B rows: rows ``0..B-1`` are
      (text_a, text_b), rows ``B..2B-1`` (text_a, text_b_neg), padded together, and the scalar
      field ``pair_rows`` is B. Files without ``text_b_neg`` (allowed outside training) give
      ordinary batches of single pairs to score.
    """

    name = "match"

    def __init__(self, vocab_path=None, max_len: int = 128, tokenizer="wordpiece", lang: str = "en",
                 seed: Optional[int] = None, do_lower_case: Optional[bool] = None,
                 learning_strategy: str = "pointwise", phase: str = "train", **kwargs):
        if learning_strategy not in STRATEGIES:
            raise ValueError("learning_strategy must be 'pointwise' or 'pairwise', got %r"
                             % (learning_strategy,))
        super().__init__(vocab_path, max_len, tokenizer, lang, seed, do_lower_case, phase, **kwargs)
        self.learning_strategy = learning_strategy
        if learning_strategy == "pairwise" and self.max_chunks is not None:
            raise ValueError("max_chunks (long documents) works with learning_strategy='pointwise'; "
                             "pairwise triples are not split into chunks")
        if learning_strategy == "pairwise":
            self.required_fields = ("text_a", "text_b", "text_b_neg")
            self.predict_optional_fields = ("text_b_neg",)
        else:
            self.required_fields = ("label", "text_a", "text_b")

    @property
    def pairwise(self) -> bool:
        return self.learning_strategy == "pairwise"

    def prepare(self, examples: List[Example]) -> None:
        if not self.pairwise:
            super().prepare(examples)

    def to_features_batch(self, examples: List[Example]) -> List[Dict]:
        if not self.pairwise:
            return super().to_features_batch(examples)
        texts_a = [str(e["text_a"]) for e in examples]
        features = self.encode_batch(texts_a, [str(e["text_b"]) for e in examples])
        if all("text_b_neg" in e for e in examples):
            negatives = self.encode_batch(texts_a, [str(e["text_b_neg"]) for e in examples])
            for f, neg in zip(features, negatives):
                f.update({"neg_" + k: neg[k] for k in PAIR_FIELDS})
        return features

    def collate(self, features: List[Feature], rng: np.random.Generator) -> Batch:
        if "neg_input_ids" not in features[0]:
            return super().collate(features, rng)
        rows = ([{k: f[k] for k in PAIR_FIELDS} for f in features]
                + [{k: f["neg_" + k] for k in PAIR_FIELDS} for f in features])
        batch = pad_batch(rows, self.pad_values)
        rest = [{k: v for k, v in f.items() if k not in PAIR_FIELDS and not k.startswith("neg_")}
                for f in features]
        batch.update(pad_batch(rest, self.pad_values, skip=self.meta_fields))
        batch["pair_rows"] = np.asarray(len(features), dtype=np.int64)
        return batch

    @property
    def outputs_attr(self) -> Dict[str, list]:
        attrs = {k: v for k, v in super().outputs_attr.items() if not k.startswith("neg_")}
        if self.features and "neg_input_ids" in self.features[0]:
            attrs["pair_rows"] = [[], "int64"]
        return attrs

    @property
    def num_classes(self) -> Optional[int]:
        return 1 if self.pairwise else super().num_classes
