"""The Reader base class: files -> examples -> features (tokenized once) -> padded batches.

To read your own data, subclass :class:`Reader` and override

* :meth:`Reader.read_examples` -- turn a file into a list of example dicts (optional: the
  default reads TSV/CSV (with or without a header), JSON lines and JSON arrays and checks
  ``required_fields``), and
* :meth:`Reader.to_features` -- turn one example into a feature dict (use :meth:`Reader.encode`
  for the text, add your label fields).

Tokenization is done once at :meth:`load_data` and cached; batching (dynamic padding, optional
length buckets, seeded shuffling, epochs), ``num_examples`` and ``register_with`` are inherited.
"""
import copy
import logging
import os
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

import numpy as np

from paddlepalm.errors import DataError
from paddlepalm.reader.batching import Batch, Batcher, Feature, pad_batch
from paddlepalm.reader.formats import FORMATS, read_records, resolve_format
from paddlepalm.tokenizer import BaseTokenizer, CodepointTokenizer, Tokenizer
from paddlepalm.utils.init_args import record_init_args

logger = logging.getLogger("paddlepalm")

Example = Dict[str, Any]
PHASES = ("train", "dev", "test", "predict")
_TOKENIZER_CACHE: Dict[tuple, Tokenizer] = {}


def build_tokenizer(vocab_path: Union[str, BaseTokenizer, None], tokenizer: Union[str, BaseTokenizer] = "wordpiece",
                    do_lower_case: Optional[bool] = None) -> BaseTokenizer:
    """A tokenizer from a vocab file, a checkpoint dir or an existing tokenizer;
    ``tokenizer='codepoint'`` is Canine's (no vocabulary: ``vocab_path`` may be None).

    ``do_lower_case=None`` follows the checkpoint's tokenizer config, else guesses from the vocab
    (a vocab without upper-case tokens is uncased).
    """
    if isinstance(tokenizer, BaseTokenizer):
        return tokenizer
    if isinstance(vocab_path, BaseTokenizer):
        return vocab_path
    if tokenizer == "codepoint" and (vocab_path is None or not os.path.isdir(vocab_path)):
        return CodepointTokenizer()
    if vocab_path is None:
        raise ValueError("a reader needs vocab_path (vocab file or checkpoint dir) or a Tokenizer")
    key = (os.path.abspath(str(vocab_path)), tokenizer, do_lower_case)
    if key not in _TOKENIZER_CACHE:
        if os.path.isdir(vocab_path):
            tok = Tokenizer.from_pretrained(vocab_path, do_lower_case=do_lower_case)
        elif tokenizer == "bpe":
            folder = os.path.dirname(vocab_path)
            tok = Tokenizer.from_bpe(vocab_path, os.path.join(folder, "merges.txt"))
        elif tokenizer == "wordpiece":
            lower = _vocab_is_uncased(vocab_path) if do_lower_case is None else do_lower_case
            tok = Tokenizer.from_vocab(vocab_path, do_lower_case=lower)
        else:
            raise ValueError("unknown tokenizer %r; expected 'wordpiece', 'bpe', 'codepoint' or a Tokenizer"
                             % tokenizer)
        _TOKENIZER_CACHE[key] = tok
    return _TOKENIZER_CACHE[key]


def _vocab_is_uncased(vocab_path: str) -> bool:
    from paddlepalm.tokenizer import read_vocab_txt

    tokens = [t for t in read_vocab_txt(vocab_path) if not (t.startswith("[") and t.endswith("]"))
              and not (t.startswith("<") and t.endswith(">"))]
    return not any(t != t.lower() for t in tokens)


class Reader:
    """Base class of readers. Subclasses set ``required_fields`` and implement ``to_features``."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        record_init_args(cls)

    name: Optional[str] = None  # registry name, e.g. 'classify'
    required_fields: Sequence[str] = ("text_a",)
    predict_optional_fields: Sequence[str] = ("label",)  # may be absent from predict files
    optional_fields: Sequence[str] = ("text_b",)  # read when present; never null
    pad_values: Dict[str, Any] = {}
    meta_fields: Sequence[str] = ()  # feature fields kept for postprocessing, never batched
    max_rows_per_batch: Optional[int] = None  # cap on encoder rows (chunks) per batch, if any
    # dev/predict phase: split batches into length-sorted sub-batches when padding costs more than
    # an engine call of this many tokens (reader.batching.length_groups); None: batches as given
    split_cost_tokens: Optional[int] = None

    def __init__(self, vocab_path: Union[str, Tokenizer, None] = None, max_len: int = 128,
                 tokenizer: Union[str, Tokenizer] = "wordpiece", lang: str = "en",
                 seed: Optional[int] = None, do_lower_case: Optional[bool] = None,
                 phase: str = "train", truncation: str = "head", bucket_by_length: bool = False,
                 fields: Optional[Mapping[str, Union[str, int]]] = None, dev_count: int = 1,
                 print_prefix: str = "", header: bool = True):
        if phase not in PHASES:
            raise ValueError("phase must be one of %s, got %r" % (", ".join(PHASES), phase))
        self.tokenizer = build_tokenizer(vocab_path, tokenizer, do_lower_case)
        self.vocab_path = vocab_path
        self.max_len = int(max_len)
        self.lang = lang
        self.seed = seed
        self.phase = phase
        self.truncation = truncation
        self.bucket_by_length = bucket_by_length
        self.fields = dict(fields) if fields else None
        self.header = bool(header)
        self.examples: List[Example] = []
        self.features: List[Feature] = []
        self.input_file: Optional[str] = None
        self._batch_size: Optional[int] = None
        self._num_epochs: Optional[int] = None
        self._batcher: Optional[Batcher] = None
        self._backbone_inputs: Optional[Dict[str, list]] = None
        self.pad_values = {"input_ids": self.tokenizer.pad_id, **type(self).pad_values}

    # ------------------------------------------------------------------ override points
    def read_examples(self, input_file: str, file_format: str = "tsv") -> List[Example]:
        """Read raw examples; each dict keeps ``_file`` and ``_line`` for error messages.

        Inputs the reader uses must not be null; outside training a label may be missing or
        null on any line (predictions need no labels).
        """
        optional = () if self.phase == "train" else tuple(self.predict_optional_fields)
        required = [f for f in self.required_fields if f not in optional]
        used = list(self.required_fields) + list(self.optional_fields) + list(self.fields or {})
        not_null = [f for f in dict.fromkeys(used) if f not in optional]
        examples = []
        for line, record in read_records(input_file, file_format, required=required, fields=self.fields,
                                         header=self.header, not_null=not_null):
            record["_file"], record["_line"] = input_file, line
            examples.append(record)
        return examples

    @classmethod
    def record_format(cls, input_file: str, file_format: str) -> Optional[str]:
        """The record format (one of ``formats.FORMATS``) :meth:`read_examples` reads
        ``input_file`` in, or None when this reader reads it its own way (CoNLL, SQuAD JSON, plain
        text). ``paddlepalm check`` reads the records of such files before training."""
        return file_format if file_format in FORMATS and cls.read_examples is Reader.read_examples else None

    def to_features(self, example: Example) -> Feature:
        """Turn one example into a feature dict (lists are padded per batch, scalars stacked)."""
        raise NotImplementedError("%s must implement to_features(example)" % type(self).__name__)

    def to_features_batch(self, examples: List[Example]) -> List[Feature]:
        """Convert many examples; built-in readers override this to tokenize in one Rust call."""
        return [self.to_features(e) for e in examples]

    def collate(self, features: List[Feature], rng: np.random.Generator) -> Batch:
        """Features -> one padded batch (``rng`` is for random choices made per batch)."""
        return pad_batch(features, self.pad_values, skip=self.meta_fields)

    def make_examples(self, inputs: Sequence[Any]) -> List[Example]:
        """Raw inputs for prediction -> examples: a string, a (text_a, text_b) pair, or a dict."""
        out = []
        for i, item in enumerate(inputs):
            if isinstance(item, dict):
                example = dict(item)
            elif isinstance(item, str):
                example = {"text_a": item}
            elif isinstance(item, (tuple, list)) and len(item) == 2:
                example = {"text_a": item[0], "text_b": item[1]}
            else:
                raise ValueError("input %d: expected a string, a (text_a, text_b) pair or a dict" % i)
            example.setdefault("_file", "<input>")
            example.setdefault("_line", i + 1)
            out.append(example)
        return out

    def load_examples(self, examples: List[Example], batch_size: int, shuffle_train: bool = True) -> "Reader":
        """Like :meth:`load_data`, from examples already in memory (no file): a training reader
        reshuffles every epoch (seeded) unless ``shuffle_train=False``."""
        return self._load(examples, batch_size, None, shuffle_train=shuffle_train, source="<memory>")

    def prepare(self, examples: List[Example]) -> None:
        """Hook run once on the training examples before conversion (e.g. to build a label map)."""

    # ------------------------------------------------------------------ helpers for subclasses
    def encode(self, text_a: str, text_b: Optional[str] = None) -> Feature:
        enc = self.tokenizer.encode(text_a, text_b, max_len=self.max_len, truncation=self.truncation)
        return {"input_ids": enc.ids, "token_type_ids": enc.type_ids}

    def encode_batch(self, texts_a: Sequence[str], texts_b: Optional[Sequence[str]] = None) -> List[Feature]:
        encs = self.tokenizer.encode_batch(texts_a, texts_b, max_len=self.max_len,
                                           truncation=self.truncation)
        return [{"input_ids": e.ids, "token_type_ids": e.type_ids} for e in encs]

    @staticmethod
    def error(example: Example, message: str, field: Optional[str] = None) -> DataError:
        """A DataError pointing at the example's file and line."""
        return DataError(message, path=example.get("_file"), line=example.get("_line"), field=field)

    # ------------------------------------------------------------------ PALM-compatible API
    def load_data(self, input_file: str, batch_size: int, num_epochs: Optional[int] = None,
                  file_format: Optional[str] = "tsv", shuffle_train: bool = True) -> "Reader":
        """Read and tokenize ``input_file`` once; batches come from iterating the reader."""
        file_format = resolve_format(input_file, file_format)
        self.input_file = input_file
        examples = self.read_examples(input_file, file_format)
        if not examples:
            raise DataError("no examples", path=input_file)
        return self._load(examples, batch_size, num_epochs, shuffle_train, input_file)

    def _load(self, examples, batch_size, num_epochs, shuffle_train, source) -> "Reader":
        self.examples = examples
        if self.phase == "train":
            self.prepare(self.examples)
        features = self.to_features_batch(self.examples)
        self._align_features(features)
        for i, f in enumerate(features):
            f.setdefault("example_index", i)
        for i, f in enumerate(features):
            f["feature_index"] = i
        self.features = features
        self._batch_size = int(batch_size)
        self._num_epochs = num_epochs if self.phase == "train" else 1
        train = self.phase == "train"
        self._batcher = Batcher(features, self._batch_size, self.collate,
                                shuffle=train and shuffle_train, seed=self.seed,
                                bucket=self.bucket_by_length and train, max_rows=self.max_rows_per_batch,
                                collate_rng=type(self).collate is not Reader.collate,  # the base collate draws nothing
                                split_cost=None if train else self.split_cost_tokens)
        # in-memory predict inputs (palm.load().predict, serving) come per call: debug, not a line per request
        (logger.debug if source == "<memory>" else logger.info)(
            "%s: %d examples -> %d features from %s", self.describe(), len(self.examples), len(features), source)
        return self

    def _align_features(self, features: List[Feature]) -> None:
        """Every feature must have the same fields to be batched. A label present on some lines
        only is an error in a training or evaluation file; in a predict file it is dropped
        everywhere (predictions need no labels) with a warning naming the first line without."""
        if not features:
            return
        common = set.intersection(*(set(f) for f in features))
        partial = sorted({k for f in features for k in f} - common - set(self.meta_fields))
        if not partial:
            return
        index = next(i for i, f in enumerate(features) if partial[0] not in f)
        example = self.examples[min(features[index].get("example_index", index), len(self.examples) - 1)]
        if self.phase != "predict":
            raise self.error(example, "no %s here although other lines have one; a %s file needs it on "
                             "every line" % (partial[0], self.phase), partial[0])
        logger.warning("%s, line %s has no %s: predicting without %s (no metrics)", example.get("_file"),
                       example.get("_line"), partial[0], ", ".join(partial))
        for f in features:
            for k in partial:
                f.pop(k, None)

    def describe(self) -> str:
        return "%s(%s)" % (type(self).__name__, self.phase)

    @property
    def num_examples(self) -> int:
        """Number of training units (features: MRC counts document windows, as PALM did)."""
        return len(self.features)

    @property
    def num_epochs(self) -> Optional[int]:
        return self._num_epochs

    @property
    def batch_size(self) -> Optional[int]:
        return self._batch_size

    @property
    def steps_per_epoch(self) -> int:
        self._require_loaded()
        return self._batcher.steps_per_epoch()

    steps_pur_epoch = steps_per_epoch  # PALM 2.x spelling

    @property
    def batcher(self) -> Batcher:
        self._require_loaded()
        return self._batcher

    def _require_loaded(self):
        if self._batcher is None:
            raise RuntimeError("%s: call load_data(...) first" % type(self).__name__)

    def iterator(self, num_epochs: Optional[int] = -1) -> Iterator[Batch]:
        """Batches for ``num_epochs`` epochs (default: the ``load_data`` setting; None: forever).

        Training readers continue where they stopped (epochs count from the start of training);
        dev/predict readers start a fresh pass each call.
        """
        self._require_loaded()
        if self.phase != "train":
            self._batcher.rewind()
        return self._batcher.iterate(self._num_epochs if num_epochs == -1 else num_epochs)

    def __iter__(self) -> Iterator[Batch]:
        return self.iterator()

    def register_with(self, backbone) -> None:
        """Check the reader fits ``backbone`` (vocabulary size) and record its inputs."""
        vocab = getattr(getattr(backbone, "config", None), "vocab_size", None)
        if vocab is not None and self.tokenizer.vocab_size > vocab:
            raise ValueError("%s: tokenizer has %d tokens but the backbone's embedding has %d rows; "
                             "use the vocab that belongs to the checkpoint"
                             % (type(self).__name__, self.tokenizer.vocab_size, vocab))
        self._backbone_inputs = dict(getattr(backbone, "inputs_attr", {}) or {})

    @property
    def outputs_attr(self) -> Dict[str, list]:
        """Names, shapes and dtypes of the batch fields (PALM's reader contract)."""
        attrs = {"input_ids": [[-1, -1], "int64"], "token_type_ids": [[-1, -1], "int64"],
                 "attention_mask": [[-1, -1], "int64"]}
        if self.features:
            for name, value in self.features[0].items():
                if name not in attrs and name not in self.meta_fields and name != "chunks":
                    attrs[name] = [[-1, -1] if isinstance(value, (list, tuple)) else [-1], "int64"]
            if "chunks" in self.features[0]:  # rows are chunks; chunk_rows/chunk_mask group them
                attrs.update(chunk_rows=[[-1, -1], "int64"], chunk_mask=[[-1, -1], "int64"])
        return attrs

    def get_epoch_outputs(self) -> Dict[str, Any]:
        return {"examples": self.examples, "features": self.features}

    def clone(self, phase: str = "train") -> "Reader":
        """A reader with the same settings (and label maps) for another phase, without data."""
        other = copy.copy(self)
        other.phase = phase
        other.examples, other.features, other._batcher, other.input_file = [], [], None, None
        return other

    def state_dict(self) -> dict:
        return {"batcher": self._batcher.state_dict() if self._batcher else None}

    def set_state_dict(self, state: dict) -> None:
        if state.get("batcher") and self._batcher:
            self._batcher.set_state_dict(state["batcher"])

    def label_vocab(self) -> Optional[List[str]]:
        """Label names in id order, if this reader has labels; saved with the model."""
        return None
