"""ClassifyReader: one text (or a text pair) and a label per line; PALM's TSV, also CSV/JSONL."""
from typing import List, Optional

from paddlepalm.reader.base import Example, Reader
from paddlepalm.reader.labels import LabelMap, LabelMapLike, encode_label, split_labels


class ClassifyReader(Reader):
    """Single-label or multi-label text classification.

    File columns: ``label`` and ``text_a`` (optionally ``text_b``). Labels are PALM integers, or
    names mapped by ``label_map`` (list, dict or JSON file; built from the training file if
    omitted and labels are not integers). ``multi_label=True`` reads ``label_sep``-joined labels.
    Labels differing only in case or whitespace are an error unless ``label_normalize``
    (``'strip'`` or ``'lower'``) merges them, in the file and the label map alike.
    """

    name = "classify"
    required_fields = ("label", "text_a")

    def __init__(self, vocab_path=None, max_len: int = 128, tokenizer="wordpiece", lang: str = "en",
                 seed: Optional[int] = None, do_lower_case: Optional[bool] = None,
                 phase: str = "train", label_map: LabelMapLike = None, multi_label: bool = False,
                 label_sep: str = ",", label_normalize: Optional[str] = None, **kwargs):
        super().__init__(vocab_path, max_len, tokenizer, lang, seed, do_lower_case, phase, **kwargs)
        self.label_normalize = label_normalize
        self.label_map = LabelMap.load(label_map, label_normalize)
        self.multi_label = multi_label
        self.label_sep = label_sep

    def _split(self, value) -> List[str]:
        return split_labels(value, self.label_sep)

    def prepare(self, examples: List[Example]) -> None:
        if self.label_map is not None:
            return
        if self.multi_label:
            self.label_map = LabelMap.from_examples(((v, e) for e in examples for v in self._split(e["label"])),
                                                    self.label_normalize)
            return
        is_int = [str(e["label"]).strip().lstrip("-").isdigit() for e in examples]
        if not any(is_int):  # label names: build the map from the training file
            self.label_map = LabelMap.from_examples(((e["label"], e) for e in examples), self.label_normalize)
        # otherwise PALM integer labels; a stray name fails in encode_label with file and line

    def _label(self, example: Example):
        if "label" not in example or example["label"] in (None, ""):
            if self.phase == "train":
                raise self.error(example, "missing label", "label")
            return None
        if not self.multi_label:
            return encode_label(self.label_map, example["label"], example, normalize=self.label_normalize)
        vector = [0.0] * len(self.label_map)
        for name in self._split(example["label"]):
            vector[encode_label(self.label_map, name, example, normalize=self.label_normalize)] = 1.0
        return vector

    def to_features_batch(self, examples: List[Example]) -> List[dict]:
        texts_a = [str(e["text_a"]) for e in examples]
        has_b = any("text_b" in e for e in examples)
        texts_b = [str(e.get("text_b", "")) for e in examples] if has_b else None
        features = self.encode_batch(texts_a, texts_b)
        for f, e in zip(features, examples):
            label = self._label(e)
            if label is not None:
                f["label"] = label
        return features

    def to_features(self, example: Example) -> dict:
        return self.to_features_batch([example])[0]

    def label_vocab(self):
        return None if self.label_map is None else list(self.label_map.labels)

    @property
    def num_classes(self) -> Optional[int]:
        return None if self.label_map is None else len(self.label_map)
