"""Extractive QA scores: SQuAD v1.1 exact match and token F1, with a Chinese/CJK variant.

``lang='en'`` (SQuAD v1.1): an answer is normalised by lower-casing, deleting ASCII punctuation,
deleting the articles *a*, *an*, *the* as whole words, and collapsing whitespace; its tokens are
the whitespace-separated words.

``lang='zh'`` (character-level scoring as in CMRC 2018 and MLQA's Chinese evaluation):
lower-case, delete ASCII punctuation and every Unicode punctuation character (so ``，。、「」《》！？``
go too), keep articles, and drop all whitespace. Each character of a space-less script (Han
ideographs, kana, Hangul, Bopomofo) is one token; a run of other characters (a Latin word, a
number) is one token, so "2018年" gives the tokens ``2018``, ``年``. F1 is the bag-of-tokens
overlap as in English (CMRC 2018's own script uses the longest common substring instead, which
can be lower when characters are reordered).

Both languages: exact match compares the normalised strings (:func:`normalize_answer`); EM and F1
take the best score over the gold answers; a pair with no token in common (including two answers
that normalise to nothing) has F1 0, as in SQuAD v1.1.
"""
from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from typing import Dict, Iterable, List, Mapping, Sequence

LANGS = ("en", "zh")

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ASCII_PUNCTUATION = frozenset(string.punctuation)
_CJK_RANGES = (
    (0x3040, 0x30FF),    # Hiragana, Katakana
    (0x3100, 0x312F),    # Bopomofo
    (0x3400, 0x4DBF),    # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FFF),    # CJK Unified Ideographs
    (0xAC00, 0xD7AF),    # Hangul Syllables
    (0xF900, 0xFAFF),    # CJK Compatibility Ideographs
    (0x20000, 0x3134F),  # CJK Unified Ideographs Extensions B-G, Compatibility Supplement
)


def is_cjk_char(char: str) -> bool:
    """True for a character of a script written without spaces between words."""
    code = ord(char)
    return any(low <= code <= high for low, high in _CJK_RANGES)


def _is_punctuation(char: str, lang: str) -> bool:
    if char in _ASCII_PUNCTUATION:
        return True
    return lang == "zh" and unicodedata.category(char).startswith("P")


def _check_lang(lang: str) -> None:
    if lang not in LANGS:
        raise ValueError("lang must be one of %s, got %r" % (", ".join(LANGS), lang))


def answer_tokens(text: str, lang: str = "en") -> List[str]:
    """The normalised tokens of an answer (see the module docstring for the rules)."""
    _check_lang(lang)
    text = "".join(c for c in text.lower() if not _is_punctuation(c, lang))
    if lang == "en":
        return _ARTICLES.sub(" ", text).split()
    tokens: List[str] = []
    for word in text.split():
        run = ""
        for char in word:
            if is_cjk_char(char):
                tokens.extend([run, char] if run else [char])
                run = ""
            else:
                run += char
        if run:
            tokens.append(run)
    return tokens


def normalize_answer(text: str, lang: str = "en") -> str:
    """Normalised answer: tokens joined by a space (``en``) or with no space at all (``zh``)."""
    return ("" if lang == "zh" else " ").join(answer_tokens(text, lang))


def exact_match(prediction: str, ground_truths: Sequence[str], lang: str = "en") -> float:
    """1.0 if the prediction equals any gold answer after normalisation, else 0.0."""
    predicted = normalize_answer(prediction, lang)
    return float(any(predicted == normalize_answer(g, lang) for g in _nonempty(ground_truths)))


def token_f1(prediction: str, ground_truth: str, lang: str = "en") -> float:
    """Bag-of-tokens F1 between one prediction and one gold answer."""
    predicted = answer_tokens(prediction, lang)
    gold = answer_tokens(ground_truth, lang)
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def max_f1(prediction: str, ground_truths: Sequence[str], lang: str = "en") -> float:
    """Best :func:`token_f1` of the prediction over the gold answers."""
    return max(token_f1(prediction, g, lang) for g in _nonempty(ground_truths))


def _nonempty(ground_truths: Sequence[str]) -> Sequence[str]:
    if isinstance(ground_truths, str) or len(ground_truths) == 0:
        raise ValueError("ground_truths must be a non-empty list of answer strings")
    return ground_truths


def squad_scores(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]],
                 lang: str = "en") -> Dict[str, float]:
    """Exact match and F1 in percent over every question in ``references``.

    A question with no prediction scores 0; predictions for unknown ids are ignored.
    Returns ``{'exact_match', 'f1', 'count'}`` with ``count`` the number of questions.
    """
    _check_lang(lang)
    if not references:
        raise ValueError("cannot score empty input: no reference questions")
    em_total = f1_total = 0.0
    for qid, answers in references.items():
        if isinstance(answers, str) or len(answers) == 0:
            raise ValueError("question %r: references need a non-empty list of answers" % qid)
        if qid in predictions:
            em_total += exact_match(predictions[qid], answers, lang)
            f1_total += max_f1(predictions[qid], answers, lang)
    count = len(references)
    return {"exact_match": 100.0 * em_total / count, "f1": 100.0 * f1_total / count,
            "count": count}


def squad_references(dataset: Mapping) -> Dict[str, List[str]]:
    """Question id -> gold answer texts from a SQuAD-format dict (``{'data': [...]}``)."""
    return {qa["id"]: [answer["text"] for answer in qa["answers"]]
            for article in _articles(dataset)
            for paragraph in article["paragraphs"]
            for qa in paragraph["qas"]}


def _articles(dataset: Mapping) -> Iterable[Mapping]:
    if "data" not in dataset:
        raise ValueError("not a SQuAD-format dataset: no top-level 'data' list")
    return dataset["data"]
