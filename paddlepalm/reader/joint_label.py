"""JointLabelReader: tasks that label the same inputs -- a sentence label *and* word tags per line
(SNIPS: intent + slots), tokenized once, so one encoder pass feeds several heads.

A batch carries the fields of both single-task readers at once: ``label`` (what the
:class:`~paddlepalm.head.Classify` head reads) and ``word_starts``/``num_words``/``word_labels``
(what the :class:`~paddlepalm.head.SequenceLabel` head reads), over one ``input_ids``. Each head
gets its label names from a :meth:`JointLabelReader.view`: ``reader.view('label')`` for the
sentence head, ``reader.view('word_labels')`` for the tagger, or ``reader.for_head(head)``.
"""
from typing import Dict, List, Optional

from paddlepalm.errors import DataError
from paddlepalm.reader.base import Example, Reader
from paddlepalm.reader.classify import ClassifyReader
from paddlepalm.reader.formats import FORMATS
from paddlepalm.reader.labels import LabelMapLike
from paddlepalm.reader.sequence_label import SequenceLabelReader

SENTENCE_FIELD, TAGS_FIELD = "label", "word_labels"  # batch fields the two heads read


class JointLabelReader(SequenceLabelReader):
    """Sentence classification and word tagging over the same sentences.

    Files: TSV (header ``text_a<TAB>label<TAB>tags``), CSV or JSON lines; ``text_a`` holds the
    words and ``tags`` one tag per word, each joined by ``token_sep`` (PALM: ``'\\x02'``; JSON
    values may be lists); ``label`` is the sentence label (a name, or a PALM integer). Other
    column names map with ``fields={'text_a': 'words', 'label': 'intent', 'tags': 'slots'}``.
    Predict files may omit ``label`` and ``tags``.

    Words are tokenized once, exactly as :class:`SequenceLabelReader` does (long sentences are cut
    between words), so ``input_ids`` equal that reader's on the same words, and equal
    :class:`ClassifyReader`'s on the space-joined words whenever the sentence fits in ``max_len``.
    ``label_map`` is the sentence label map (as ClassifyReader's, ``multi_label`` too) and
    ``tag_map`` the tag map (as SequenceLabelReader's ``label_map_config``); both are built from
    the training file when not given.
    """

    name = "joint_label"
    required_fields = ("text_a", "label", "tags")
    predict_optional_fields = ("label", "tags")
    tags_field = "tags"
    # batch field -> the constructor argument holding its label map (what a config's tasks map onto)
    label_map_args = {SENTENCE_FIELD: "label_map", TAGS_FIELD: "tag_map"}

    def __init__(self, vocab_path=None, max_len: int = 128, label_map: LabelMapLike = None,
                 tag_map: LabelMapLike = None, tokenizer="wordpiece", lang: str = "en",
                 seed: Optional[int] = None, do_lower_case: Optional[bool] = None, phase: str = "train",
                 token_sep: str = "\x02", unknown_label: Optional[str] = None, multi_label: bool = False,
                 label_sep: str = ",", **kwargs):
        super().__init__(vocab_path, max_len, tag_map, tokenizer, lang, seed, do_lower_case, phase,
                         token_sep, unknown_label, **kwargs)
        # The sentence labels are encoded by a ClassifyReader's rules (one implementation of them).
        self.sentence = ClassifyReader(self.tokenizer, max_len, phase=phase, label_map=label_map,
                                       multi_label=multi_label, label_sep=label_sep)

    # ------------------------------------------------------------------ reading
    def read_examples(self, input_file: str, file_format: str = "tsv") -> List[Example]:
        if file_format == "conll":
            raise DataError("joint_label files need a sentence label column: use TSV, CSV or JSON lines "
                            "with text_a, label and tags", path=input_file)
        return [self._with_words(e) for e in Reader.read_examples(self, input_file, file_format)]

    @classmethod
    def record_format(cls, input_file: str, file_format: str) -> Optional[str]:
        """Records as every reader reads them (``paddlepalm check`` reads them before training)."""
        own = cls.read_examples is JointLabelReader.read_examples  # a subclass may read its own way
        return file_format if own and file_format in FORMATS else None

    def prepare(self, examples: List[Example]) -> None:
        super().prepare(examples)
        self.sentence.phase = self.phase
        self.sentence.prepare(examples)

    def to_features_batch(self, examples: List[Example]) -> List[Dict]:
        features = super().to_features_batch(examples)
        self.sentence.phase = self.phase
        for f, e in zip(features, examples):
            label = self.sentence._label(e)
            if label is not None:
                f[SENTENCE_FIELD] = label
        return features

    # ------------------------------------------------------------------ labels, per head
    def label_vocabs(self) -> Dict[str, Optional[List[str]]]:
        """``{'label': sentence label names, 'word_labels': tag names}`` (None where unknown)."""
        return {SENTENCE_FIELD: self.sentence.label_vocab(), TAGS_FIELD: super().label_vocab()}

    def label_vocab(self, field: Optional[str] = None) -> Optional[List[str]]:
        """Label names of ``field`` (``'label'`` or ``'word_labels'``). This reader has two label
        sets, so the field must be named; heads get theirs through :meth:`view`."""
        if field is None:
            raise ValueError("JointLabelReader has two label sets: call label_vocab('label') or "
                             "label_vocab('word_labels'), or give each head reader.view(field)")
        vocabs = self.label_vocabs()
        if field not in vocabs:
            raise KeyError("unknown label field %r; expected %s" % (field, " or ".join(vocabs)))
        return vocabs[field]

    @property
    def num_classes(self) -> Optional[int]:
        raise ValueError("JointLabelReader has two label sets: use view('label').num_classes or "
                         "view('word_labels').num_classes")

    def view(self, field: str) -> "LabelView":
        """This reader as one task sees it: ``label_vocab()`` and ``num_classes`` of ``field``."""
        self.label_vocab(field)  # checks the name
        return LabelView(self, field)

    def for_head(self, head) -> "LabelView":
        """The view whose labels ``head`` reads (by its ``label_fields``)."""
        fields = [f for f in getattr(head, "label_fields", ()) if f in (SENTENCE_FIELD, TAGS_FIELD)]
        if len(fields) != 1:
            raise ValueError("%s reads label fields %s; a JointLabelReader provides %r and %r"
                             % (type(head).__name__, list(getattr(head, "label_fields", ())),
                                SENTENCE_FIELD, TAGS_FIELD))
        return self.view(fields[0])

    def clone(self, phase: str = "train") -> "JointLabelReader":
        other = super().clone(phase)
        other.sentence = self.sentence.clone(phase)  # shares the label map
        return other

    def label_args(self) -> Dict[str, Optional[List[str]]]:
        """Constructor arguments that rebuild both label maps (what a saved model records)."""
        vocabs = self.label_vocabs()
        return {arg: vocabs[field] for field, arg in self.label_map_args.items()}


class LabelView:
    """A :class:`JointLabelReader` seen by one head: its own label names, everything else shared."""

    def __init__(self, reader: JointLabelReader, field: str):
        self.reader = reader
        self.field = field

    @property
    def input_source(self) -> JointLabelReader:
        """The reader whose batches this view's task shares with the other views' tasks: the
        engine trains them with one encoder pass per batch."""
        return self.reader

    def clone(self, phase: str = "train") -> "LabelView":
        return LabelView(self.reader.clone(phase), self.field)

    def load_data(self, *args, **kwargs) -> "LabelView":
        """Load the shared reader (see :meth:`Reader.load_data`); returns this view."""
        self.reader.load_data(*args, **kwargs)
        return self

    def label_vocab(self) -> Optional[List[str]]:
        return self.reader.label_vocab(self.field)

    @property
    def num_classes(self) -> Optional[int]:
        vocab = self.label_vocab()
        return None if vocab is None else len(vocab)

    def __getattr__(self, name):
        return getattr(self.reader, name)

    def __repr__(self):
        return "LabelView(%s, %r)" % (self.reader.describe(), self.field)
