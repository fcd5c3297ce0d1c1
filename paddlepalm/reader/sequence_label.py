"""SequenceLabelReader: one tag per word (NER, slot filling), from PALM's TSV or CoNLL columns.

Word-level tags are aligned to sub-words by labelling the first piece of each word; the head
reads the encoder output at those positions (``word_starts``). Sentences longer than ``max_len``
are cut between words; the words that did not fit are predicted ``'O'`` -- unless
``window_stride`` is set: then long inputs are read in overlapping windows and every word gets
its prediction from the window where it is most central.
"""
import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

from paddlepalm.errors import DataError
from paddlepalm.reader.base import Example, Reader
from paddlepalm.reader.chunking import check_chunk_caps, check_stride, most_central_window, word_windows
from paddlepalm.reader.formats import FORMATS, _lines
from paddlepalm.reader.labels import LabelMap, LabelMapLike
from paddlepalm.tokenizer import Pieces

logger = logging.getLogger("paddlepalm")

OUTSIDE = "O"
CONLL_EXTENSIONS = (".conll", ".conllu", ".bio", ".iob", ".iob2", ".bioes")
DOCSTART = "-DOCSTART-"


class SequenceLabelReader(Reader):
    """Word-level sequence labelling.

    Formats (``load_data(..., file_format=...)``):

    * ``'tsv'`` (PALM): header ``text_a<TAB>label``; the words and the tags of a sentence are each
      joined by ``token_sep`` (PALM: ``'\\x02'``; e.g. ``' '`` for space-separated files). CSV and
      JSON lines work too; JSON values may also be lists.
    * ``'conll'`` (also guessed from ``.conll``/``.bio``/``.iob`` names): one word per line, word
      in the first column and tag in the last (tab- or space-separated), a blank line between
      sentences, ``-DOCSTART-`` lines skipped. Predict files may have the word column only.

    Tags: ``label_map_config`` is a ``{"TAG": id}`` JSON file, a dict or a list of tags. Without
    one, the map is built from the training tags: ``'O'`` first (id 0, always present), then the
    other tags sorted by name. An unknown tag is an error naming file and line, unless
    ``unknown_label`` names a tag to use instead (PALM silently used ``'O'``).

    Features: ``input_ids``, ``token_type_ids``, ``word_starts`` (position of each kept word's
    first sub-word), ``num_words`` (words kept), ``word_labels`` (tag ids, when tags are given)
    and, for postprocessing only, ``words`` and ``tags`` (all of them, untruncated).

    Long inputs: with ``window_stride`` set, a sentence becomes windows of whole words of at most
    ``max_len`` tokens, each starting at the first word at least ``window_stride`` pieces after the
    previous window's start (at most ``max_windows`` windows; words after them are predicted
    ``'O'``). The feature is then ``{"chunks": [{input_ids, token_type_ids, word_starts}, ...],
    "word_chunk", "word_slot", "num_words", "word_labels", ...}``: word ``w`` is read from window
    ``word_chunk[w]`` at word position ``word_slot[w]``, the window where it is most central.
    Output (predictions, metrics) is per word of the whole input. Batches hold at most
    ``max_chunks_per_batch`` windows.
    """

    name = "sequence_label"
    required_fields = ("text_a", "label")
    meta_fields = ("words", "tags")
    tags_field = "label"  # the file column with the word tags

    def __init__(self, vocab_path=None, max_len: int = 128, label_map_config: LabelMapLike = None,
                 tokenizer="wordpiece", lang: str = "en", seed: Optional[int] = None,
                 do_lower_case: Optional[bool] = None, phase: str = "train", token_sep: str = "\x02",
                 unknown_label: Optional[str] = None, window_stride: Optional[int] = None,
                 max_windows: Optional[int] = None, max_chunks_per_batch: int = 64, **kwargs):
        super().__init__(vocab_path, max_len, tokenizer, lang, seed, do_lower_case, phase, **kwargs)
        self.window_stride = window_stride
        self.max_windows = max_windows
        self.max_chunks_per_batch = max_chunks_per_batch
        if window_stride is not None:
            check_stride(window_stride, self.max_len - self.tokenizer.special_count(pair=False),
                         "window_stride")
            self.max_rows_per_batch = check_chunk_caps(max_windows or 1, max_chunks_per_batch)
        elif max_windows is not None:
            raise ValueError("max_windows needs window_stride (windows are made only with window_stride)")
        if not token_sep:
            raise ValueError("token_sep must be a non-empty string")
        self.label_map = LabelMap.load(label_map_config)
        self.token_sep = token_sep
        self.unknown_label = unknown_label
        self.num_truncated = 0
        self._check_unknown_label()

    # ------------------------------------------------------------------ reading
    def read_examples(self, input_file: str, file_format: str = "tsv") -> List[Example]:
        if file_format == "conll" or (file_format == "tsv" and
                                      os.path.splitext(input_file)[1].lower() in CONLL_EXTENSIONS):
            return self._read_conll(input_file)
        return [self._with_words(e) for e in super().read_examples(input_file, file_format)]

    @classmethod
    def record_format(cls, input_file: str, file_format: str) -> Optional[str]:
        if file_format == "conll" or os.path.splitext(input_file)[1].lower() in CONLL_EXTENSIONS:
            return None
        own = cls.read_examples is SequenceLabelReader.read_examples  # a subclass may read its own way
        return file_format if own and file_format in FORMATS else None

    def make_examples(self, inputs: Sequence) -> List[Example]:
        """In-memory inputs: a sentence (split on ``token_sep`` if it has one, else on whitespace),
        a list of words, or a dict with ``text_a`` (and ``label``) as in files."""
        examples = []
        for i, item in enumerate(inputs):
            if isinstance(item, dict):
                example = dict(item)
            elif isinstance(item, str):
                example = {"text_a": item.split(self.token_sep) if self.token_sep in item else item.split()}
            elif isinstance(item, (list, tuple)):
                example = {"text_a": list(item)}
            else:
                raise ValueError("input %d: expected a sentence, a list of words or a dict" % i)
            example.setdefault("_file", "<input>")
            example.setdefault("_line", i + 1)
            examples.append(self._with_words(example))
        return examples

    def _with_words(self, example: Example) -> Example:
        """Set ``words`` and ``tags`` (None without tags) from ``text_a``/``label`` if missing."""
        if "words" not in example:
            example["words"] = self._split(example, "text_a")
            has_tags = example.get(self.tags_field) not in (None, "")
            example["tags"] = self._split(example, self.tags_field) if has_tags else None
        self._check_counts(example)
        return example

    def _split(self, example: Example, field: str) -> List[str]:
        value = example[field]
        items = [str(v) for v in value] if isinstance(value, (list, tuple)) \
            else str(value).strip().split(self.token_sep)
        if items in ([], [""]):
            raise self.error(example, "empty sentence", field)
        for position, item in enumerate(items):
            if not item.strip():
                raise self.error(example, "empty word at position %d (two %r separators in a row?)"
                                 % (position + 1, self.token_sep), field)
        return [item.strip() for item in items]

    def _check_counts(self, example: Example) -> None:
        if example["tags"] is None:
            if self.phase == "train":
                raise self.error(example, "missing tags", self.tags_field)
        elif len(example["tags"]) != len(example["words"]):
            raise self.error(example, "%d words but %d tags" % (len(example["words"]),
                                                               len(example["tags"])), self.tags_field)

    def _read_conll(self, path: str) -> List[Example]:
        examples: List[Example] = []
        rows: List[Tuple[int, List[str]]] = []
        columns = None

        def flush():
            if rows:
                tagged = len(rows[0][1]) > 1
                examples.append({"words": [r[1][0] for r in rows],
                                 "tags": [r[1][-1] for r in rows] if tagged else None,
                                 "_tag_lines": [r[0] for r in rows], "_file": path,
                                 "_line": rows[0][0]})
                self._with_words(examples[-1])
                rows.clear()

        for lineno, line in _lines(path):
            if not line.strip():
                flush()
                continue
            cols = [c.strip() for c in (line.split("\t") if "\t" in line else line.split())]
            if cols[0] == DOCSTART:
                flush()
                continue
            if columns is None:
                columns = len(cols)
            if len(cols) != columns or not all(cols):
                raise DataError("expected %d non-empty column(s) (word ... tag) like the file's first "
                                "word line, found %s" % (columns, len([c for c in cols if c])),
                                path=path, line=lineno)
            rows.append((lineno, cols))
        flush()
        if not examples:
            raise DataError("no sentences (empty file?)", path=path)
        return examples

    # ------------------------------------------------------------------ labels
    def prepare(self, examples: List[Example]) -> None:
        examples = [self._with_words(e) for e in examples]
        if self.label_map is None:
            tags = {t for e in examples for t in (e["tags"] or ())}
            self.label_map = LabelMap([OUTSIDE] + sorted(tags - {OUTSIDE}))
        self._check_unknown_label()

    def _check_unknown_label(self) -> None:
        if self.unknown_label is not None and self.label_map is not None \
                and self.unknown_label not in self.label_map:
            raise ValueError("unknown_label %r is not in the label map (%s)"
                             % (self.unknown_label, ", ".join(self.label_map.labels)))

    def _tag_ids(self, example: Example) -> List[int]:
        if self.label_map is None:
            raise self.error(example, "no label map: pass label_map_config, or clone() the training "
                             "reader so dev/test files use its tags", self.tags_field)
        ids = []
        for k, tag in enumerate(example["tags"]):
            if tag not in self.label_map:
                if self.unknown_label is None:
                    line = example["_tag_lines"][k] if "_tag_lines" in example else example.get("_line")
                    raise DataError("unknown tag %r (known: %s); pass unknown_label='O' to map unknown "
                                    "tags to 'O'" % (tag, ", ".join(self.label_map.labels[:20])),
                                    path=example.get("_file"), line=line, field=self.tags_field)
                tag = self.unknown_label
            ids.append(self.label_map.id_of(tag))
        return ids

    # ------------------------------------------------------------------ features
    def to_features_batch(self, examples: List[Example]) -> List[Dict]:
        examples = [self._with_words(e) for e in examples]
        pieces = self.tokenizer.word_pieces_batch([e["words"] for e in examples])
        budget = self.max_len - self.tokenizer.special_count(pair=False)
        if budget < 1:
            raise ValueError("max_len=%d leaves no room for words" % self.max_len)
        make = self._feature if self.window_stride is None else self._windowed_feature
        features = [make(e, p, budget) for e, p in zip(examples, pieces)]
        self.num_truncated = sum(f["num_words"] < len(f["words"]) for f in features)
        if self.num_truncated:
            limit = ("max_len=%d" % self.max_len if self.window_stride is None
                     else "max_windows=%d windows" % self.max_windows)
            logger.warning("%s: %d of %d sentences do not fit in %s; their last words are "
                           "left out and predicted 'O'", self.describe(), self.num_truncated,
                           len(features), limit)
        return features

    def _windowed_feature(self, example: Example, pieces: Pieces, budget: int) -> Dict:
        grouped = [g[:budget] for g in _pieces_per_word(pieces, len(example["words"]), self.tokenizer.unk_id)]
        lengths = [len(g) for g in grouped]
        windows = word_windows(lengths, budget, self.window_stride, self.max_windows)
        chunks = []
        for first, end in windows:
            ids = [i for g in grouped[first:end] for i in g]
            word_ids = [w - first for w in range(first, end) for _ in grouped[w]]
            encoded = self.tokenizer.build(Pieces(ids, [(0, 0)] * len(ids), word_ids))
            chunks.append({"input_ids": encoded.ids, "token_type_ids": encoded.type_ids,
                           "word_starts": _first_positions(encoded.word_ids)})
        placed = [p for p in most_central_window(windows, lengths) if p[0] >= 0]
        feature = {"chunks": chunks, "word_chunk": [p[0] for p in placed], "word_slot": [p[1] for p in placed],
                   "num_words": len(placed), "words": example["words"]}
        if example["tags"] is not None:
            feature["word_labels"] = self._tag_ids(example)[:len(placed)]
            feature["tags"] = example["tags"]
        return feature

    def _feature(self, example: Example, pieces: Pieces, budget: int) -> Dict:
        ids, word_ids = _fit_words(_pieces_per_word(pieces, len(example["words"]),
                                                    self.tokenizer.unk_id), budget)
        encoded = self.tokenizer.build(Pieces(ids, [(0, 0)] * len(ids), word_ids))
        starts = _first_positions(encoded.word_ids)
        feature = {"input_ids": encoded.ids, "token_type_ids": encoded.type_ids,
                   "word_starts": starts, "num_words": len(starts), "words": example["words"]}
        if example["tags"] is not None:
            feature["word_labels"] = self._tag_ids(example)[:len(starts)]
            feature["tags"] = example["tags"]
        return feature

    def to_features(self, example: Example) -> Dict:
        return self.to_features_batch([example])[0]

    def label_vocab(self) -> Optional[List[str]]:
        return None if self.label_map is None else list(self.label_map.labels)

    @property
    def num_classes(self) -> Optional[int]:
        return None if self.label_map is None else len(self.label_map)


def _pieces_per_word(pieces: Pieces, num_words: int, unk_id: int) -> List[List[int]]:
    """Sub-word ids grouped by word; a word the tokenizer drops entirely becomes ``[UNK]``."""
    grouped: List[List[int]] = [[] for _ in range(num_words)]
    for piece_id, word in zip(pieces.ids, pieces.word_ids):
        grouped[word].append(piece_id)
    return [g or [unk_id] for g in grouped]


def _fit_words(grouped: Sequence[List[int]], budget: int) -> Tuple[List[int], List[int]]:
    """Whole words from the start while they fit in ``budget`` pieces (a first word longer than
    the budget is kept, cut); returns the flat ids and their word index."""
    ids: List[int] = []
    word_ids: List[int] = []
    for word, word_pieces in enumerate(grouped):
        if len(ids) + len(word_pieces) > budget:
            if word == 0:
                ids, word_ids = word_pieces[:budget], [0] * budget
            break
        ids += word_pieces
        word_ids += [word] * len(word_pieces)
    return ids, word_ids


def _first_positions(word_ids: Sequence[Optional[int]]) -> List[int]:
    """Position of the first sub-word of each word, in word order."""
    starts: List[int] = []
    for position, word in enumerate(word_ids):
        if word is not None and word == len(starts):
            starts.append(position)
    return starts
