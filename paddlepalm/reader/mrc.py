"""MRCReader: SQuAD v1.1 JSON -> question + document-window features for extractive QA.

Each question becomes one feature per window of its context: ``[CLS] question [SEP] window
[SEP]``. Windows of at most ``max_len - len(question) - specials`` context tokens start every
``doc_stride`` tokens until the context is covered. Every context is tokenized once (with
character offsets), however many questions it has.

Batched fields: ``input_ids``, ``token_type_ids``, ``context_start`` / ``context_end`` (the
window's context tokens are ``input_ids[context_start:context_end]``), ``example_index`` and, at
train, ``start_positions`` / ``end_positions`` (0 = ``[CLS]`` when the window lacks the answer).
Meta fields (kept for postprocessing, not batched): ``token_offsets`` (character span of each
window context token in the context) and ``max_context`` (whether this window gives the token
its most central position among the windows containing it).
"""
import json
import os
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from paddlepalm.errors import DataError
from paddlepalm.reader.base import Example, Reader
from paddlepalm.tokenizer.tokenizer import Pieces


def _window_starts(num_tokens: int, window: int, stride: int) -> List[int]:
    """Start indices of windows of ``window`` tokens, ``stride`` apart, covering all tokens."""
    starts = [0]
    while starts[-1] + window < num_tokens:
        starts.append(starts[-1] + min(stride, window))
    return starts


def _max_context_flags(starts: Sequence[int], window: int, num_tokens: int) -> List[List[bool]]:
    """For each window, per token: is this the window where the token is most central?"""
    best: List[Tuple[float, int]] = [(-1.0, -1)] * num_tokens
    for w, start in enumerate(starts):
        end = min(start + window, num_tokens)
        for t in range(start, end):
            score = min(t - start, end - 1 - t) + 0.01 * (end - start)
            if score > best[t][0]:
                best[t] = (score, w)
    return [[best[t][1] == w for t in range(s, min(s + window, num_tokens))]
            for w, s in enumerate(starts)]


def _char_to_token_span(offsets: Sequence[Tuple[int, int]], start: int,
                        end: int) -> Optional[Tuple[int, int]]:
    """First and last token overlapping the character span ``[start, end)``."""
    first = last = None
    for i, (a, b) in enumerate(offsets):
        if b > start and a < end and b > a:
            if first is None:
                first = i
            last = i
    return None if first is None else (first, last)


class MRCReader(Reader):
    """Extractive QA (SQuAD v1.1 JSON). ``num_examples`` counts windows, as in PALM."""

    name = "mrc"
    required_fields = ("question", "context")
    meta_fields = ("token_offsets", "max_context")

    def __init__(self, vocab_path=None, max_len: int = 384, max_query_len: int = 64,
                 doc_stride: int = 128, tokenizer="wordpiece", lang: str = "en",
                 seed: Optional[int] = None, do_lower_case: Optional[bool] = None,
                 remove_noanswer: bool = True, phase: str = "train", **kwargs):
        super().__init__(vocab_path, max_len, tokenizer, lang, seed, do_lower_case, phase, **kwargs)
        self.max_query_len = int(max_query_len)
        self.doc_stride = int(doc_stride)
        self.remove_noanswer = remove_noanswer
        if self.max_len - self.max_query_len - self.tokenizer.special_count(pair=True) < 1:
            raise ValueError("max_len=%d leaves no room for the context after max_query_len=%d"
                             % (self.max_len, self.max_query_len))
        if self.doc_stride < 1:
            raise ValueError("doc_stride must be >= 1, got %d" % self.doc_stride)

    # ------------------------------------------------------------------ reading
    def read_examples(self, input_file: str, file_format: str = "json") -> List[Example]:
        """One example per question: qid, question, context, answers and its JSON path."""
        text = _read_text(input_file)
        try:
            dataset = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError("invalid JSON: %s (column %d)" % (e.msg, e.colno), path=input_file,
                            line=e.lineno) from None
        articles = dataset.get("data") if isinstance(dataset, dict) else None
        if not isinstance(articles, list):
            raise DataError("not SQuAD JSON: expected an object with a 'data' list", path=input_file,
                            field="data")
        if not articles:
            raise DataError("'data' is empty: no questions", path=input_file, field="data")
        examples: List[Example] = []
        for i, article in enumerate(articles):
            for j, paragraph in enumerate(_list(article, "paragraphs", "data[%d]" % i, input_file)):
                where = "data[%d].paragraphs[%d]" % (i, j)
                context = _string(paragraph, "context", where, input_file)
                for k, qa in enumerate(_list(paragraph, "qas", where, input_file)):
                    qa_where = "%s.qas[%d]" % (where, k)
                    example = {"qid": _string(qa, "id", qa_where, input_file),
                               "question": _string(qa, "question", qa_where, input_file),
                               "context": context, "answers": qa.get("answers") or [],
                               "_file": input_file, "_path": qa_where}
                    self._check_answers(example, text)
                    examples.append(example)
        if not examples:
            raise DataError("no questions in any paragraph", path=input_file, field="data")
        return examples

    def make_examples(self, inputs: Sequence[Any]) -> List[Example]:
        """In-memory questions: ``(question, context)`` pairs or dicts with question, context
        (and optionally id, answers)."""
        examples = []
        for i, item in enumerate(inputs):
            if isinstance(item, (tuple, list)) and len(item) == 2:
                item = {"question": item[0], "context": item[1]}
            valid = isinstance(item, dict) and all(isinstance(item.get(k), str) for k in self.required_fields)
            if not valid:
                raise ValueError("input %d: expected a (question, context) pair or a dict with "
                                 "'question' and 'context' strings" % i)
            example = {"qid": str(item.get("id", item.get("qid", i))), "question": item["question"],
                       "context": item["context"], "answers": item.get("answers") or [],
                       "_file": "<input>", "_path": "inputs[%d]" % i}
            self._check_answers(example)
            examples.append(example)
        return examples

    def _check_answers(self, example: Example, source: str = "") -> None:
        """Gold answers need a text; training needs exactly one, found at its answer_start."""
        answers = example["answers"]
        if not isinstance(answers, list) or not all(isinstance(a, dict) and isinstance(a.get("text"), str)
                                                    for a in answers):
            raise self._error(example, "'answers' must be a list of {text, answer_start}", "answers", source)
        if self.phase != "train":
            return  # gold texts are only scored; positions are not needed
        if len(answers) != 1:
            raise self._error(example, "training needs exactly 1 answer per question, found %d"
                              % len(answers), "answers", source)
        text, start = answers[0]["text"], answers[0].get("answer_start")
        if not text.strip():
            raise self._error(example, "empty answer text", "answers[0].text", source)
        if not isinstance(start, int) or start < 0:
            raise self._error(example, "'answer_start' must be a character offset >= 0, got %r"
                              % (start,), "answers[0].answer_start", source)
        found = example["context"][start:start + len(text)]
        if found != text:
            raise self._error(example, "answer text %r not found at answer_start %d (the context "
                              "has %r there)" % (text, start, found), "answers[0]", source)

    @staticmethod
    def _error(example: Example, message: str, field: str, source: str = "") -> DataError:
        """A DataError naming the file, the question id, its JSON path and (if found) the line."""
        return DataError("question %r: %s" % (example["qid"], message), path=example["_file"],
                         line=_line_of_qid(source, example["qid"]) if source else None,
                         field="%s.%s" % (example["_path"], field))

    # ------------------------------------------------------------------ features
    def to_features_batch(self, examples: List[Example]) -> List[Dict[str, Any]]:
        questions = self.tokenizer.pieces_batch([e["question"] for e in examples])
        contexts = list(dict.fromkeys(e["context"] for e in examples))  # each context once
        context_pieces = dict(zip(contexts, self.tokenizer.pieces_batch(contexts)))
        features = []
        for index, (example, question) in enumerate(zip(examples, questions)):
            question = _slice(question, 0, self.max_query_len)
            features += self._windows(example, index, question, context_pieces[example["context"]])
        return features

    def to_features(self, example: Example) -> List[Dict[str, Any]]:
        """All window features of one example (a list, unlike other readers)."""
        return self.to_features_batch([example])

    def _windows(self, example: Example, index: int, question: Pieces,
                 context: Pieces) -> List[Dict[str, Any]]:
        window = self.max_len - len(question.ids) - self.tokenizer.special_count(pair=True)
        starts = _window_starts(len(context.ids), window, self.doc_stride)
        flags = _max_context_flags(starts, window, len(context.ids))
        span = self._answer_tokens(example, context) if self.phase == "train" else None
        features = []
        for start, max_context in zip(starts, flags):
            piece = _slice(context, start, start + window)
            enc = self.tokenizer.build(question, piece)
            first = enc.sequence_ids.index(1) if piece.ids else len(enc.ids) - 1
            feature = {"input_ids": enc.ids, "token_type_ids": enc.type_ids,
                       "context_start": first, "context_end": first + len(piece.ids),
                       "example_index": index, "token_offsets": [list(o) for o in piece.offsets],
                       "max_context": max_context}
            if span is not None:
                inside = start <= span[0] and span[1] < start + len(piece.ids)
                if not inside and self.remove_noanswer:
                    continue
                feature["start_positions"] = first + span[0] - start if inside else 0
                feature["end_positions"] = first + span[1] - start if inside else 0
            features.append(feature)
        return features

    def _answer_tokens(self, example: Example, context: Pieces) -> Tuple[int, int]:
        answer = example["answers"][0]
        start = answer["answer_start"]
        span = _char_to_token_span(context.offsets, start, start + len(answer["text"]))
        if span is None:
            raise self._error(example, "answer %r covers no token of the context" % answer["text"],
                              "answers[0]")
        return span

    def describe(self) -> str:
        return "MRCReader(%s, max_len=%d, doc_stride=%d)" % (self.phase, self.max_len, self.doc_stride)


# ---------------------------------------------------------------------- JSON helpers
def _read_text(path: str) -> str:
    if not os.path.isfile(path):
        raise DataError("file not found", path=path)
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError("not valid UTF-8 (byte 0x%02x at column %d); re-save the file as UTF-8"
                        % (raw[e.start], column), path=path, line=line) from None


def _list(obj: Any, key: str, where: str, path: str) -> list:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, list):
        raise DataError("missing list %r" % key, path=path, field="%s.%s" % (where, key))
    return value


def _string(obj: Any, key: str, where: str, path: str) -> str:
    value = obj.get(key) if isinstance(obj, dict) else None
    if key == "id" and isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        raise DataError("missing %r (expected a string)" % key, path=path, field="%s.%s" % (where, key))
    return value


def _line_of_qid(text: str, qid: str) -> Optional[int]:
    """1-based line of ``"id": <qid>`` in the raw JSON (for error messages only)."""
    for quoted in (json.dumps(qid, ensure_ascii=False), json.dumps(qid)):
        match = re.search(r'"id"\s*:\s*' + re.escape(quoted), text)
        if match:
            return text.count("\n", 0, match.start()) + 1
    return None


def _slice(pieces: Pieces, start: int, end: int) -> Pieces:
    return Pieces(pieces.ids[start:end], pieces.offsets[start:end],
                  pieces.word_ids[start:end] if pieces.word_ids else [])
