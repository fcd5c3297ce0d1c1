"""ClassifyReader: one text (or a text pair) and a label per line; PALM's TSV, also CSV/JSONL."""
import logging
from typing import List, Optional

from paddlepalm.reader.base import Example, Reader
from paddlepalm.reader.chunking import check_chunk_caps, check_stride, chunk_spans
from paddlepalm.reader.labels import LabelMap, LabelMapLike, encode_label, split_labels
from paddlepalm.tokenizer import Pieces
from paddlepalm.tokenizer.truncation import keep_indices

logger = logging.getLogger("paddlepalm")


class ClassifyReader(Reader):
    """Single-label or multi-label text classification.

    File columns: ``label`` and ``text_a`` (optionally ``text_b``). Labels are PALM integers, or
    names mapped by ``label_map`` (list, dict or JSON file; built from the training file if
    omitted and labels are not integers). ``multi_label=True`` reads ``label_sep``-joined labels.
    Labels differing only in case or whitespace are an error unless ``label_normalize``
    (``'strip'`` or ``'lower'``) merges them, in the file and the label map alike.

    Long documents: with ``max_chunks`` set, the text (``text_b`` for pairs; ``text_a`` is then
    kept in every chunk, cut to at most half of ``max_len``) is split into chunks of ``max_len``
    tokens whose starts are ``chunk_stride`` pieces apart (default: no overlap), at most
    ``max_chunks`` per document (the rest is cut, with a warning). One feature is one document;
    a batch holds whole documents and at most ``max_chunks_per_batch`` chunks, so memory is
    bounded by ``max_chunks_per_batch x max_len`` tokens whatever the documents' length. The
    head pools the chunk vectors (its ``chunk_pooling``).
    """

    name = "classify"
    required_fields = ("label", "text_a")

    def __init__(self, vocab_path=None, max_len: int = 128, tokenizer="wordpiece", lang: str = "en",
                 seed: Optional[int] = None, do_lower_case: Optional[bool] = None,
                 phase: str = "train", label_map: LabelMapLike = None, multi_label: bool = False,
                 label_sep: str = ",", label_normalize: Optional[str] = None, max_chunks: Optional[int] = None,
                 chunk_stride: Optional[int] = None, max_chunks_per_batch: int = 64, **kwargs):
        super().__init__(vocab_path, max_len, tokenizer, lang, seed, do_lower_case, phase, **kwargs)
        self.label_normalize = label_normalize
        self.label_map = LabelMap.load(label_map, label_normalize)
        self.multi_label = multi_label
        self.label_sep = label_sep
        self.max_chunks = max_chunks
        self.chunk_stride = chunk_stride
        self.max_chunks_per_batch = max_chunks_per_batch
        self.num_cut_documents = 0
        if max_chunks is not None:
            self.max_rows_per_batch = check_chunk_caps(max_chunks, max_chunks_per_batch)
            check_stride(chunk_stride, self.max_len - self.tokenizer.special_count(pair=False))
        elif chunk_stride is not None:
            raise ValueError("chunk_stride needs max_chunks (the reader splits documents only with max_chunks)")

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
        features = self.encode_batch(texts_a, texts_b) if self.max_chunks is None \
            else self.chunk_batch(texts_a, texts_b)
        for f, e in zip(features, examples):
            label = self._label(e)
            if label is not None:
                f["label"] = label
        return features

    def to_features(self, example: Example) -> dict:
        return self.to_features_batch([example])[0]

    def chunk_batch(self, texts_a: List[str], texts_b: Optional[List[str]] = None) -> List[dict]:
        """Documents -> features ``{"chunks": [{"input_ids", "token_type_ids"}, ...]}``."""
        pieces_a = self.tokenizer.pieces_batch(texts_a)
        pieces_b = self.tokenizer.pieces_batch(texts_b) if texts_b is not None else [None] * len(pieces_a)
        features, cut = [], 0
        for a, b in zip(pieces_a, pieces_b):
            chunks, was_cut = self._chunks(a, b)
            cut += was_cut
            features.append({"chunks": chunks})
        self.num_cut_documents = cut
        if cut:
            logger.warning("%s: %d of %d documents need more than max_chunks=%d chunks; only their first "
                           "%d chunks are read", self.describe(), cut, len(features), self.max_chunks,
                           self.max_chunks)
        return features

    def _chunks(self, a: Pieces, b: Optional[Pieces]):
        budget = self.max_len - self.tokenizer.special_count(pair=b is not None)
        prefix, long = None, a
        if b is not None:  # the pair's first text in every chunk, the second one split
            keep = keep_indices(len(a.ids), min(len(a.ids), budget // 2), self.truncation)
            prefix, long = _piece_slice(a, keep), b
            budget -= len(keep)
        stride = None if self.chunk_stride is None else min(self.chunk_stride, budget)
        spans = chunk_spans(len(long.ids), budget, stride)
        chunks = []
        for start, end in spans[:self.max_chunks]:
            part = _piece_slice(long, range(start, end))
            enc = self.tokenizer.build(part) if prefix is None else self.tokenizer.build(prefix, part)
            chunks.append({"input_ids": enc.ids, "token_type_ids": enc.type_ids})
        return chunks, len(spans) > self.max_chunks

    def label_vocab(self):
        return None if self.label_map is None else list(self.label_map.labels)

    @property
    def num_classes(self) -> Optional[int]:
        return None if self.label_map is None else len(self.label_map)


def _piece_slice(p: Pieces, keep) -> Pieces:
    keep = list(keep)
    return Pieces([p.ids[i] for i in keep], [p.offsets[i] for i in keep],
                  [p.word_ids[i] for i in keep] if p.word_ids else [])
