import json
import os

import pytest

import paddlepalm as palm
from paddlepalm.errors import DataError
from tests.helpers import minilm_dir, overfit, predict_all, tiny_model, write_vocab

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
XQUAD = os.path.join(os.environ.get("PADDLEPALM_DATA", os.path.join(REPO, "..", "shared", "datasets")),
                     "xquad", "xquad.en.json")

WEATHER = "the weather in paris is sunny , and it will rain tomorrow ."
NOVEL = 'he  wrote  the novel ,  "a good book"  in 1995 !'  # extra spaces, quotes, an [UNK] number
LONG = " ".join(["play jazz music by the rock song ."] * 6) + " the cinema is in paris ."


def qa(qid, question, context, answer=None, start=None):
    answers = [] if answer is None else [{"text": answer, "answer_start":
                                          context.index(answer) if start is None else start}]
    return {"id": qid, "question": question, "answers": answers}


def squad(paragraphs):
    return {"version": "1.1", "data": [{"title": "t", "paragraphs": [
        {"context": context, "qas": [qa(q, question, context, answer) for q, question, answer in qas]}
        for context, qas in paragraphs]}]}


PARAGRAPHS = [
    (WEATHER, [("w1", "what is the weather in paris ?", "sunny"),
               ("w2", "when will it rain ?", "tomorrow")]),
    (NOVEL, [("n1", "who wrote the novel ?", "he"),
             ("n2", "what book ?", '"a good book"')]),
]


@pytest.fixture
def vocab(tmp_path):
    return write_vocab(str(tmp_path / "vocab"))


def _write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
    return str(path)


def _span_text(reader, feature):
    example = reader.examples[feature["example_index"]]
    offsets = feature["token_offsets"]
    s = feature["start_positions"] - feature["context_start"]
    e = feature["end_positions"] - feature["context_start"]
    return example["context"][offsets[s][0]:offsets[e][1]]


def test_learns_and_round_trips_exact_answer_text(tmp_path, vocab):
    path = _write_json(tmp_path / "train.json", squad(PARAGRAPHS))
    reader = palm.reader.MRCReader(vocab, 40, 12, 16, seed=0).load_data(path, batch_size=8, num_epochs=1)
    assert reader.num_examples == 4
    assert [_span_text(reader, f) for f in reader.features] == ["sunny", "tomorrow", "he", '"a good book"']
    backbone = tiny_model("bert")
    reader.register_with(backbone)
    head = palm.head.MRC(12, 32)
    losses = overfit(reader, head, backbone, steps=100)
    assert losses[-1] < 0.05 < losses[0]
    dev = reader.clone("dev").load_data(path, batch_size=2)
    out = tmp_path / "out"
    _, metrics = predict_all(dev, head, backbone, str(out))
    assert metrics == {"exact_match": 100.0, "f1": 100.0}
    predictions = json.load(open(out / "predictions.json", encoding="utf-8"))
    assert predictions == {"w1": "sunny", "w2": "tomorrow", "n1": "he", "n2": '"a good book"'}
    nbest = json.load(open(out / "nbest_predictions.json", encoding="utf-8"))
    assert set(nbest) == set(predictions)
    for qid, candidates in nbest.items():
        assert candidates[0]["text"] == predictions[qid]
        assert abs(sum(c["probability"] for c in candidates) - 1.0) < 1e-6
        assert {"text", "probability", "start_logit", "end_logit"} <= set(candidates[0])
        assert len(candidates) <= 20


def test_windows_cover_the_context_and_find_the_answer_in_a_later_window(tmp_path, vocab):
    data = squad([(LONG, [("c1", "what is in paris ?", "cinema")])])
    path = _write_json(tmp_path / "long.json", data)
    tok = palm.reader.MRCReader(vocab, 24, 8, 6).tokenizer
    n_context = len(tok.pieces(LONG).ids)
    keep_all = palm.reader.MRCReader(vocab, 24, 8, 6, remove_noanswer=False).load_data(path, 4)
    features = keep_all.features
    assert len(features) > 2 and keep_all.num_examples == len(features)
    covered = set()
    starts = []
    for f in features:
        assert len(f["input_ids"]) <= 24
        n = f["context_end"] - f["context_start"]
        assert n == len(f["token_offsets"]) == len(f["max_context"])
        first = tok.pieces(LONG).offsets.index(tuple(f["token_offsets"][0]))
        starts.append(first)
        covered |= set(range(first, first + n))
    assert covered == set(range(n_context))
    assert all(b - a == 6 for a, b in zip(starts, starts[1:]))
    flags = {}
    for f, start in zip(features, starts):  # every token is "max context" in exactly one window
        for k, flag in enumerate(f["max_context"]):
            flags[start + k] = flags.get(start + k, 0) + flag
    assert set(flags.values()) == {1}
    with_answer = [f for f in features if f["start_positions"] > 0]
    assert [_span_text(keep_all, f) for f in with_answer] == ["cinema"] * len(with_answer)
    assert features.index(with_answer[0]) > 0  # not in the first window
    assert all(f["start_positions"] == f["end_positions"] == 0 for f in features if f not in with_answer)
    dropped = palm.reader.MRCReader(vocab, 24, 8, 6).load_data(path, 4)
    assert dropped.num_examples == len(with_answer)

    backbone = tiny_model("bert")
    head = palm.head.MRC(8, 32, with_negative=True)
    keep_all.load_data(path, batch_size=len(features), num_epochs=1)
    losses = overfit(keep_all, head, backbone, steps=120)
    assert losses[-1] < 0.05
    predict = keep_all.clone("predict").load_data(path, batch_size=3)
    _, metrics = predict_all(predict, head, backbone, str(tmp_path / "out"))
    assert metrics["exact_match"] == 100.0
    assert json.load(open(tmp_path / "out" / "predictions.json")) == {"c1": "cinema"}
    assert "c1" in json.load(open(tmp_path / "out" / "null_odds.json"))


def test_contexts_are_tokenized_once(tmp_path, vocab, monkeypatch):
    path = _write_json(tmp_path / "t.json", squad(PARAGRAPHS))
    reader = palm.reader.MRCReader(vocab, 40, 12, 16)
    calls = []
    original = reader.tokenizer.pieces_batch
    monkeypatch.setattr(reader.tokenizer, "pieces_batch", lambda texts: calls.append(len(texts)) or original(texts))
    reader.load_data(path, batch_size=2)
    assert calls == [4, 2]  # all questions in one call, each of the 2 contexts once


def test_train_batches_and_predict_fields(tmp_path, vocab):
    path = _write_json(tmp_path / "t.json", squad(PARAGRAPHS))
    batch = next(iter(palm.reader.MRCReader(vocab, 40, 12, 16, seed=0).load_data(path, 4)))
    assert {"input_ids", "token_type_ids", "attention_mask", "start_positions", "end_positions",
            "context_start", "context_end", "example_index", "feature_index"} <= set(batch)
    assert "token_offsets" not in batch and "max_context" not in batch
    pred = palm.reader.MRCReader(vocab, 40, 12, 16, phase="predict").load_data(path, 4)
    assert "start_positions" not in next(iter(pred))
    assert pred.examples[0]["answers"][0]["text"] == "sunny"


def test_dev_keeps_all_answers_and_train_needs_exactly_one(tmp_path, vocab):
    data = squad(PARAGRAPHS[:1])
    data["data"][0]["paragraphs"][0]["qas"][0]["answers"].append({"text": "sunny ,", "answer_start": 24})
    path = _write_json(tmp_path / "multi.json", data)
    dev = palm.reader.MRCReader(vocab, 40, 12, 16, phase="dev").load_data(path, 2)
    assert [a["text"] for a in dev.examples[0]["answers"]] == ["sunny", "sunny ,"]
    with pytest.raises(DataError, match=r"'w1': training needs exactly 1 answer per question, found 2") as err:
        palm.reader.MRCReader(vocab, 40, 12, 16).load_data(path, 2)
    assert err.value.field == "data[0].paragraphs[0].qas[0].answers"


def _bad(tmp_path, mutate):
    data = squad(PARAGRAPHS)
    mutate(data)
    return _write_json(tmp_path / "bad.json", data)


def test_answer_not_at_answer_start(tmp_path, vocab):
    def shift(data):
        data["data"][0]["paragraphs"][1]["qas"][1]["answers"][0]["answer_start"] += 2

    path = _bad(tmp_path, shift)
    with pytest.raises(DataError) as err:
        palm.reader.MRCReader(vocab, 40, 12, 16).load_data(path, 2)
    message = str(err.value)
    assert "bad.json" in message and "'n2'" in message and "not found at answer_start" in message
    assert err.value.field == "data[0].paragraphs[1].qas[1].answers[0]"
    lines = open(path, encoding="utf-8").read().splitlines()
    assert '"n2"' in lines[err.value.line - 1]


@pytest.mark.parametrize("mutate, message, field", [
    (lambda d: d["data"][0]["paragraphs"][1].pop("context"), "missing 'context'",
     "data[0].paragraphs[1].context"),
    (lambda d: d["data"].clear(), "'data' is empty", "data"),
    (lambda d: d.pop("data"), "expected an object with a 'data' list", "data"),
    (lambda d: d["data"][0]["paragraphs"][0]["qas"][1].pop("question"), "missing 'question'",
     "data[0].paragraphs[0].qas[1].question"),
    (lambda d: d["data"][0]["paragraphs"][0]["qas"][0]["answers"][0].pop("text"),
     "'answers' must be a list of {text, answer_start}", "data[0].paragraphs[0].qas[0].answers"),
])
def test_bad_structure_names_file_and_field(tmp_path, vocab, mutate, message, field):
    path = _bad(tmp_path, mutate)
    with pytest.raises(DataError) as err:
        palm.reader.MRCReader(vocab, 40, 12, 16).load_data(path, 2)
    assert message in str(err.value) and "bad.json" in str(err.value)
    assert err.value.field == field


def test_non_utf8_and_invalid_json(tmp_path, vocab):
    path = tmp_path / "latin.json"
    path.write_bytes(json.dumps(squad(PARAGRAPHS), indent=1).replace("paris", "caf\xe9").encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.json, line \d+: not valid UTF-8") as err:
        palm.reader.MRCReader(vocab, 40, 12, 16).load_data(str(path), 2)
    assert err.value.line > 1
    path = tmp_path / "broken.json"
    path.write_text('{"data": [\n  {"paragraphs": ]}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"broken\.json, line 2: invalid JSON"):
        palm.reader.MRCReader(vocab, 40, 12, 16).load_data(str(path), 2)


@pytest.mark.skipif(not os.path.isfile(XQUAD), reason="XQuAD not found")
def test_xquad_answer_spans_recovered_from_offsets():
    reader = palm.reader.MRCReader(minilm_dir(), 384, 64, 128, remove_noanswer=False)
    reader.load_data(XQUAD, batch_size=8)
    assert len(reader.examples) == 1190
    recovered = {}
    for f in reader.features:
        if f["start_positions"] > 0 and f["example_index"] not in recovered:
            recovered[f["example_index"]] = _span_text(reader, f)
    exact = sum(recovered.get(i) == e["answers"][0]["text"] for i, e in enumerate(reader.examples))
    rate = exact / len(reader.examples)
    print("XQuAD en: %d/%d answers recovered exactly (%.2f%%)" % (exact, len(reader.examples), 100 * rate))
    assert rate >= 0.99
    dev = reader.clone("dev").load_data(XQUAD, batch_size=8)
    assert len(dev.examples) == 1190 and dev.num_examples >= 1190


def test_in_memory_questions_and_registry(vocab):
    assert palm.reader.READERS.get("mrc") is palm.reader.MRCReader
    assert palm.head.HEADS.get("mrc") is palm.head.MRC
    reader = palm.reader.MRCReader(vocab, 40, 12, 16, phase="predict")
    examples = reader.make_examples([("what is the weather ?", WEATHER),
                                     {"id": "x", "question": "who ?", "context": NOVEL}])
    assert [e["qid"] for e in examples] == ["0", "x"]
    with pytest.raises(ValueError, match="input 0"):
        reader.make_examples(["just a string"])
    with pytest.raises(ValueError, match="no room for the context"):
        palm.reader.MRCReader(vocab, 16, 14, 4)
