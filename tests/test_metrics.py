"""Metrics: hand-computed cases, edge cases, and entity F1 checked against seqeval (conlleval)."""
import random

import numpy as np
import pytest

from paddlepalm.metrics import (
    accuracy,
    entity_f1,
    exact_match,
    extract_entities,
    max_f1,
    multilabel_f1,
    multilabel_precision_recall_f1,
    normalize_answer,
    precision_recall_f1,
    squad_references,
    squad_scores,
    subset_accuracy,
    token_f1,
)
from paddlepalm.metrics.squad import answer_tokens

# ---------------------------------------------------------------- classification

# position by position: (a,a) ok, (b,a) wrong, (a,a) ok, (c,c) ok, (b,c) wrong
PREDS = ["a", "b", "a", "c", "b"]
GOLDS = ["a", "a", "a", "c", "c"]


def test_accuracy():
    assert accuracy(PREDS, GOLDS) == pytest.approx(3 / 5)
    assert accuracy([1, 2], [1, 2]) == 1.0


def test_precision_recall_f1_macro_by_hand():
    # a: tp2 fp0 fn1 -> P 1, R 2/3, F1 0.8;  b: tp0 fp2 fn0 -> 0, 0 (0/0), 0;
    # c: tp1 fp0 fn1 -> P 1, R 1/2, F1 2/3.
    result = precision_recall_f1(PREDS, GOLDS, average="macro")
    assert result["precision"] == pytest.approx(2 / 3)
    assert result["recall"] == pytest.approx((2 / 3 + 0 + 1 / 2) / 3)  # 7/18
    assert result["f1"] == pytest.approx((0.8 + 0 + 2 / 3) / 3)  # 22/45
    assert result["per_class"]["a"] == pytest.approx(
        {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert result["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert result["per_class"]["c"]["support"] == 2
    assert list(result["per_class"]) == ["a", "b", "c"]


def test_precision_recall_f1_micro_by_hand():
    # all classes: tp 3, fp 2, fn 2 -> 0.6 everywhere, equal to accuracy
    result = precision_recall_f1(PREDS, GOLDS, average="micro")
    assert (result["precision"], result["recall"], result["f1"]) == pytest.approx((0.6, 0.6, 0.6))
    # only a and c: tp 3, fp 0 (the b predictions are outside), fn 2 -> P 1, R 0.6, F1 0.75
    result = precision_recall_f1(PREDS, GOLDS, average="micro", classes=["a", "c"])
    assert (result["precision"], result["recall"], result["f1"]) == pytest.approx((1, 0.6, 0.75))
    assert set(result["per_class"]) == {"a", "c"}


def test_precision_recall_f1_zero_division_and_errors():
    result = precision_recall_f1(["x", "x"], ["y", "y"], classes=["z"])
    assert (result["precision"], result["recall"], result["f1"]) == (0.0, 0.0, 0.0)
    for bad in (lambda: accuracy([], []), lambda: precision_recall_f1([], []),
                lambda: accuracy([1], [1, 2]), lambda: precision_recall_f1([1], [1], "weighted"),
                lambda: precision_recall_f1([1], [1], classes=[])):
        with pytest.raises(ValueError):
            bad()
    with pytest.raises(ValueError, match="empty"):
        accuracy([], [])


PRED_MATRIX = [[1, 0, 1], [0, 1, 0], [0, 0, 0]]
GOLD_MATRIX = [[1, 1, 0], [0, 1, 0], [0, 0, 1]]


def test_multilabel_by_hand():
    # cells: tp (0,0) (1,1); fp (0,2); fn (0,1) (2,2)
    micro = multilabel_precision_recall_f1(PRED_MATRIX, GOLD_MATRIX, "micro")
    assert micro == pytest.approx({"precision": 2 / 3, "recall": 1 / 2, "f1": 4 / 7})
    # columns: (1,1,1), (P 1, R 1/2, F 2/3), (0,0,0)
    macro = multilabel_precision_recall_f1(PRED_MATRIX, GOLD_MATRIX, "macro")
    assert macro == pytest.approx({"precision": 2 / 3, "recall": 1 / 2, "f1": 5 / 9})
    # rows: (1/2,1/2,1/2), (1,1,1), (0,0,0) - the last has a gold label but no prediction
    samples = multilabel_precision_recall_f1(PRED_MATRIX, GOLD_MATRIX, "samples")
    assert samples == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5})
    assert multilabel_f1(PRED_MATRIX, GOLD_MATRIX) == pytest.approx(4 / 7)
    assert multilabel_f1(np.array(PRED_MATRIX, bool), GOLD_MATRIX, "macro") == pytest.approx(5 / 9)
    assert subset_accuracy(PRED_MATRIX, GOLD_MATRIX) == pytest.approx(1 / 3)


def test_multilabel_errors():
    for pred, gold in (([], []), (np.zeros((0, 3)), np.zeros((0, 3))), ([1, 0], [1, 0]),
                       ([[1, 0]], [[1, 0, 0]]), ([[2, 0]], [[1, 0]])):
        with pytest.raises(ValueError):
            multilabel_f1(pred, gold)
    with pytest.raises(ValueError):
        multilabel_f1(PRED_MATRIX, GOLD_MATRIX, average="weighted")
    assert multilabel_f1([[0, 0]], [[0, 0]]) == 0.0  # nothing to find: 0.0, not NaN


# ---------------------------------------------------------------- sequence labelling

def test_extract_entities_bio_conlleval_rules():
    tags = ["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC", "I-ORG", "O", "B-MISC"]
    assert extract_entities(tags) == [
        ("PER", 0, 2),   # plain B I
        ("LOC", 3, 5),   # I- after O starts an entity
        ("LOC", 5, 6),   # B- starts a new one even after the same type
        ("ORG", 6, 7),   # I- of another type starts a new one
        ("MISC", 8, 9),  # entity at the very end
    ]
    assert extract_entities([]) == []
    assert extract_entities(["O", "O"]) == []
    assert extract_entities(["I-X"]) == [("X", 0, 1)]


def test_extract_entities_bioes():
    tags = ["S-PER", "B-LOC", "E-LOC", "I-LOC", "E-ORG", "O", "E-PER", "B-X", "I-X"]
    assert extract_entities(tags, scheme="BIOES") == [
        ("PER", 0, 1),  # single
        ("LOC", 1, 3),  # B E
        ("LOC", 3, 4),  # I after E starts anew; closed by the type change
        ("ORG", 4, 5),
        ("PER", 6, 7),  # E after O is a one-token entity
        ("X", 7, 9),    # unterminated at the end of the sequence
    ]


def test_extract_entities_rejects_bad_tags():
    for tags, scheme in ((["X"], "BIO"), (["B-"], "BIO"), (["E-PER"], "BIO"),
                         (["U-PER"], "BIOES"), (["O"], "IOB1")):
        with pytest.raises(ValueError):
            extract_entities(tags, scheme)


def test_entity_f1_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "I-ORG"]]
    # gold PER(0,2) LOC(3,4) | ORG(0,1); pred PER(0,2) ORG(3,4) | ORG(0,2); only PER is right
    result = entity_f1(gold, pred)
    assert (result["precision"], result["recall"], result["f1"]) == pytest.approx((1 / 3,) * 3)
    assert result["per_type"] == {
        "LOC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "ORG": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "PER": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
    }
    perfect = entity_f1(gold, gold)
    assert (perfect["precision"], perfect["recall"], perfect["f1"]) == (1.0, 1.0, 1.0)
    empty = entity_f1([["O"]], [["O"]])
    assert (empty["f1"], empty["per_type"]) == (0.0, {})


def test_entity_f1_errors():
    with pytest.raises(ValueError, match="sequence 1"):
        entity_f1([["O"], ["O", "B-X"]], [["O"], ["O"]])
    with pytest.raises(ValueError):
        entity_f1([["O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="empty"):
        entity_f1([], [])
    with pytest.raises(ValueError, match="string"):
        entity_f1(["O"], ["O"])


TRICKY = [  # (gold, pred)
    (["O", "I-PER", "I-PER", "O"], ["O", "B-PER", "I-PER", "O"]),
    (["B-PER", "I-LOC", "I-LOC"], ["B-PER", "I-PER", "I-LOC"]),
    (["B-LOC", "I-LOC", "B-LOC"], ["B-LOC", "I-LOC", "I-LOC"]),
    (["O", "O", "B-ORG"], ["O", "O", "I-ORG"]),
    (["B-MISC"], ["B-MISC"]),
    (["I-PER"], ["B-LOC"]),
    (["B-PER", "O", "I-PER", "I-PER"], ["B-PER", "I-PER", "I-PER", "I-PER"]),
    (["O", "O", "O"], ["B-PER", "O", "I-ORG"]),
    (["B-ORG", "I-ORG", "I-PER", "B-PER"], ["I-ORG", "I-ORG", "B-PER", "B-PER"]),
    (["B-LOC", "I-LOC", "I-LOC", "O", "B-LOC", "I-LOC"], ["B-LOC", "I-LOC", "O", "O", "B-LOC",
                                                          "I-LOC"]),
]


def _random_bio_pairs(count, seed):
    rng = random.Random(seed)
    tags = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "I-MISC"]
    pairs = []
    for _ in range(count):
        gold = [rng.choice(tags) for _ in range(rng.randint(1, 25))]
        pred = [rng.choice(tags) if rng.random() < 0.25 else tag for tag in gold]
        pairs.append((gold, pred))
    return pairs


def _assert_matches_seqeval(pairs, scheme="BIO"):
    metrics = pytest.importorskip("seqeval.metrics")
    from seqeval.metrics.sequence_labeling import get_entities

    gold = [g for g, _ in pairs]
    pred = [p for _, p in pairs]
    for tags in gold + pred:
        assert sorted(extract_entities(tags, scheme)) == sorted(
            (t, s, e + 1) for t, s, e in get_entities(tags))
    ours = entity_f1(gold, pred, scheme)
    theirs = (metrics.precision_score(gold, pred), metrics.recall_score(gold, pred),
              metrics.f1_score(gold, pred))
    assert (ours["precision"], ours["recall"], ours["f1"]) == pytest.approx(theirs, abs=1e-9)
    return ours


@pytest.mark.filterwarnings("ignore")
def test_entity_f1_matches_seqeval_on_tricky_sequences():
    _assert_matches_seqeval(TRICKY)
    for pair in TRICKY:  # also one pair at a time (some have no entity on one side)
        _assert_matches_seqeval([pair])


def test_entity_f1_matches_seqeval_on_random_sequences():
    pairs = _random_bio_pairs(200, seed=20171)
    ours = _assert_matches_seqeval(pairs)
    assert 0.2 < ours["f1"] < 0.9  # the comparison is not vacuous
    from seqeval.metrics.sequence_labeling import precision_recall_fscore_support

    gold, pred = [g for g, _ in pairs], [p for _, p in pairs]
    _, _, f1s, supports = precision_recall_fscore_support(gold, pred, average=None)
    types = sorted(ours["per_type"])
    assert [ours["per_type"][t]["support"] for t in types] == list(supports)
    assert [ours["per_type"][t]["f1"] for t in types] == pytest.approx(list(f1s), abs=1e-9)


def test_entity_f1_bioes_matches_seqeval_default_mode():
    pairs = [(["S-PER", "B-LOC", "E-LOC", "I-LOC", "E-ORG", "O", "E-PER", "B-X", "I-X"],
              ["S-PER", "B-LOC", "I-LOC", "E-LOC", "S-ORG", "O", "S-PER", "B-X", "E-X"])]
    _assert_matches_seqeval(pairs, scheme="BIOES")


# ---------------------------------------------------------------- SQuAD

def test_normalize_answer_english():
    # lower -> drop punctuation ("brown-fox" -> "brownfox") -> drop articles -> collapse spaces
    assert normalize_answer("The  Quick, brown-fox!") == "quick brownfox"
    assert normalize_answer("An apple a day") == "apple day"
    assert normalize_answer("theatre Another") == "theatre another"  # only whole words
    assert normalize_answer("  ") == ""


def test_token_f1_and_exact_match_by_hand():
    # pred tokens cat sat on mat, gold cat on mat: 3 common, P 3/4, R 1 -> 6/7
    assert token_f1("the cat sat on the mat", "a cat on a mat") == pytest.approx(6 / 7)
    assert exact_match("The Cat.", ["cat", "dog"]) == 1.0
    assert exact_match("cats", ["cat"]) == 0.0
    # vs "red": P 1/3 R 1 -> 1/2; vs "big dog": P 2/3 R 1 -> 4/5
    assert max_f1("big red dog", ["red", "big dog"]) == pytest.approx(0.8)
    assert token_f1("the", "a") == 0.0  # both empty after normalising: F1 0 as in v1.1 ...
    assert exact_match("the", ["a"]) == 1.0  # ... while they match exactly
    with pytest.raises(ValueError):
        max_f1("x", [])
    with pytest.raises(ValueError):
        exact_match("x", "x")


def test_squad_scores_by_hand():
    predictions = {"q1": "Denver Broncos", "q2": "the cat sat", "extra": "ignored"}
    references = {"q1": ["Denver Broncos", "Broncos"], "q2": ["a cat"], "q3": ["x"]}
    # q1: EM 1 F1 1; q2: EM 0, F1 of [cat sat] vs [cat] = 2/3; q3 unanswered: 0
    scores = squad_scores(predictions, references)
    assert scores == pytest.approx({"exact_match": 100 / 3, "f1": 100 * (5 / 3) / 3, "count": 3})
    with pytest.raises(ValueError, match="empty"):
        squad_scores({}, {})
    with pytest.raises(ValueError, match="q1"):
        squad_scores({"q1": "a"}, {"q1": []})
    with pytest.raises(ValueError):
        squad_scores({"q1": "a"}, {"q1": ["a"]}, lang="fr")


def test_chinese_scoring():
    assert normalize_answer("《三体》，刘慈欣 ", "zh") == "三体刘慈欣"
    assert normalize_answer("「東京」タワー。", "zh") == "東京タワー"
    assert answer_tokens("2018年 World-Cup", "zh") == ["2018", "年", "worldcup"]
    assert answer_tokens("The 长城", "zh") == ["the", "长", "城"]  # no article removal in zh
    # 4 characters vs 2: P 1/2, R 1 -> 2/3; whitespace-split English tokens would give 0
    assert token_f1("北京大学", "北京", "zh") == pytest.approx(2 / 3)
    assert token_f1("北京大学", "北京") == 0.0
    assert exact_match("北京 大学", ["北京大学。"], "zh") == 1.0
    # 7 vs 5 characters, all 5 shared: P 5/7, R 1 -> 5/6
    scores = squad_scores({"a": "中华人民共和国"}, {"a": ["人民共和国", "中国"]}, lang="zh")
    assert scores == pytest.approx({"exact_match": 0.0, "f1": 500 / 6, "count": 1})


def test_squad_references():
    dataset = {"data": [{"title": "t", "paragraphs": [{"context": "c", "qas": [
        {"id": "1", "question": "?", "answers": [{"text": "a", "answer_start": 0},
                                                 {"text": "b", "answer_start": 1}]},
        {"id": "2", "question": "?", "answers": [{"text": "c", "answer_start": 0}]}]}]}]}
    assert squad_references(dataset) == {"1": ["a", "b"], "2": ["c"]}
    with pytest.raises(ValueError):
        squad_references({"version": "1.1"})


def test_metrics_do_not_import_paddle():
    import subprocess
    import sys

    code = "import sys, paddlepalm.metrics; assert 'paddle' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
