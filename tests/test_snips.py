"""SNIPS loader: synthetic files (piece boundaries, encodings, errors), and the real data if any."""
import json
import os
from pathlib import Path

import pytest

from paddlepalm.datasets.snips import (
    Utterance,
    decode_bytes,
    intent_label_list,
    load_snips,
    read_snips_file,
    slot_label_map,
    words_and_tags,
    write_palm_tsv,
)
from paddlepalm.errors import DataError

DATA_ROOT = Path(os.environ.get("PADDLEPALM_DATA",
                                Path(__file__).resolve().parents[1].parent / "shared" / "datasets"))
SNIPS_DIR = DATA_ROOT / "snips"


def _utterance(*pieces):
    """{"data": [...]} from (text,) or (text, slot) tuples."""
    return {"data": [{"text": p[0], "entity": p[1]} if len(p) > 1 else {"text": p[0]}
                     for p in pieces]}


def _write_json(path, document, encoding="utf-8"):
    path.write_bytes(json.dumps(document, ensure_ascii=False).encode(encoding))
    return path


# ---------------------------------------------------------------- words and tags

def test_piece_boundaries_inside_words():
    words, tags = words_and_tags([("play ", None), ("Beyoncé", "artist"), ("'s song at ", None),
                                  ("5", "time"), ("pm", None)])
    assert words == ["play", "Beyoncé's", "song", "at", "5pm"]
    assert tags == ["O", "B-artist", "O", "O", "B-time"]


def test_multi_word_slot_and_adjacent_slots():
    words, tags = words_and_tags([("add ", None), ("Pop  Punk\nPerfection 🍕", "playlist"),
                                  (" ", None), ("jazz ", "genre"), ("blues", "genre"), ("!", None)])
    assert words == ["add", "Pop", "Punk", "Perfection", "🍕", "jazz", "blues!"]
    assert tags == ["O", "B-playlist", "I-playlist", "I-playlist", "I-playlist",
                    "B-genre", "B-genre"]  # two pieces of one slot type are two entities


def test_slot_glued_to_previous_word():
    # "addLos" starts in the plain piece, so the slot's first own word is "Ángeles"
    words, tags = words_and_tags([("add", None), ("Los Ángeles Azules", "artist"), (" now", None)])
    assert words == ["addLos", "Ángeles", "Azules", "now"]
    assert tags == ["O", "B-artist", "I-artist", "O"]
    # a slot piece in which no word starts gets no tag ("one pmnear" from SNIPS validate data)
    words, tags = words_and_tags([("at ", None), ("one pm", "timeRange"), ("near", "spatial")])
    assert (words, tags) == (["at", "one", "pmnear"], ["O", "B-timeRange", "I-timeRange"])


def test_empty_pieces_and_outer_whitespace():
    words, tags = words_and_tags([("", None), ("  ", None), ("", "x"), ("rock", "genre"),
                                  (" \t", None)])
    assert (words, tags) == (["rock"], ["B-genre"])


# ---------------------------------------------------------------- encodings

def test_decode_bytes_detects_encodings():
    assert decode_bytes("Beyoncé".encode("utf-8")) == ("Beyoncé", "utf-8")
    assert decode_bytes(b"\xef\xbb\xbfabc") == ("abc", "utf-8")
    # the SNIPS PlayMusic pizza: U+1F355 as two separately UTF-8-encoded surrogates
    assert decode_bytes(b"a \xed\xa0\xbc\xed\xbd\x95") == ("a \U0001f355", "cesu-8")
    assert decode_bytes("Beyoncé “live”".encode("cp1252")) == ("Beyoncé “live”", "cp1252")
    assert decode_bytes(b"caf\xe9 \x81") == ("café \x81", "latin-1")  # 0x81: not in cp1252


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252"])
def test_read_snips_file_non_ascii(tmp_path, encoding):
    path = _write_json(tmp_path / "train_PlayMusic_full.json", {"PlayMusic": [
        _utterance(("play ", ), ("Beyoncé", "artist"), ("'s song", )),
        _utterance(("put on ", ), ("Café Tacvba", "artist"), (" at ", ), ("5", "time"), ("pm",)),
    ]}, encoding)
    first, second = read_snips_file(str(path))
    assert first == Utterance(["play", "Beyoncé's", "song"], ["O", "B-artist", "O"], "PlayMusic",
                              "%s#0" % path)
    assert second.words == ["put", "on", "Café", "Tacvba", "at", "5pm"]
    assert second.tags == ["O", "O", "B-artist", "I-artist", "O", "B-time"]
    assert second.source.endswith("#1")


def test_read_snips_file_cesu8_emoji(tmp_path):
    raw = json.dumps({"PlayMusic": [_utterance(("hear ",), ("Perfection \U0001f355", "playlist"))]},
                     ensure_ascii=False).encode("utf-8", "surrogatepass")
    raw = raw.replace("\U0001f355".encode("utf-8"), b"\xed\xa0\xbc\xed\xbd\x95")
    path = tmp_path / "x.json"
    path.write_bytes(raw)
    (utterance,) = read_snips_file(path)
    assert utterance.words == ["hear", "Perfection", "\U0001f355"]


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("document, field", [
    ({"A": [_utterance(("ok",)), {"data": [{"entity": "x"}]}]}, "A[1].data[0]"),
    ({"A": [{"text": "no data"}]}, "A[0]"),
    ({"A": [_utterance(("x", ""))]}, "A[0].data[0].entity"),
    ({"A": [_utterance(("x", "two words"))]}, "A[0].data[0].entity"),
    ({"A": [_utterance(("ok",)), _utterance((" ",))]}, "A[1]"),
    ({"A": {"data": []}}, "A"),
])
def test_structure_errors_name_file_and_field(tmp_path, document, field):
    path = _write_json(tmp_path / "bad.json", document)
    with pytest.raises(DataError) as caught:
        read_snips_file(path)
    assert caught.value.field == field
    assert caught.value.path == str(path)
    assert str(path) in str(caught.value)


def test_malformed_json_and_top_level(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"A": [\n  {"data": [}\n]}', encoding="utf-8")
    with pytest.raises(DataError, match="malformed JSON") as caught:
        read_snips_file(path)
    assert caught.value.line == 2
    _write_json(path, {"A": [], "B": []})
    with pytest.raises(DataError):
        read_snips_file(path)


# ---------------------------------------------------------------- split and TSV

def _fake_snips(directory, train_per_intent=6, dev_per_intent=2):
    for intent in ("PlayMusic", "GetWeather"):
        _write_json(directory / ("train_%s_full.json" % intent), {intent: [
            _utterance(("%s train %d " % (intent, i),), ("slot value", "thing"))
            for i in range(train_per_intent)]})
        _write_json(directory / ("validate_%s.json" % intent), {intent: [
            _utterance(("%s dev %d" % (intent, i),)) for i in range(dev_per_intent)]})
    return directory


def test_load_snips_synthetic_split(tmp_path):
    splits = load_snips(_fake_snips(tmp_path), seed=3, test_per_intent=2)
    assert {k: len(v) for k, v in splits.items()} == {"train": 8, "dev": 4, "test": 4}
    assert [u.intent for u in splits["test"]] == ["GetWeather"] * 2 + ["PlayMusic"] * 2
    assert [u.words[2] for u in splits["dev"]] == ["0", "1", "0", "1"]
    again = load_snips(tmp_path, seed=3, test_per_intent=2)
    assert [u.source for u in again["test"]] == [u.source for u in splits["test"]]
    train_sources = {u.source for u in splits["train"]}
    assert train_sources.isdisjoint(u.source for u in splits["test"])
    with pytest.raises(ValueError):
        load_snips(tmp_path, test_per_intent=7)


def test_load_snips_missing_data(tmp_path):
    with pytest.raises(FileNotFoundError, match="nlu-benchmark"):
        load_snips(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="all SNIPS files"):
        load_snips(tmp_path)
    _fake_snips(tmp_path)
    (tmp_path / "validate_GetWeather.json").unlink()
    with pytest.raises(FileNotFoundError, match="validate_GetWeather.json"):
        load_snips(tmp_path)


def _read_tsv(path):
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == ""  # every row ends with a newline
    return lines[0], [line.split("\t") for line in lines[1:-1]]


def _round_trip(utterances, tmp_path, intent_labels=None):
    intent_path, slot_path = tmp_path / "intent.tsv", tmp_path / "slot.tsv"
    labels = write_palm_tsv(utterances, str(intent_path), str(slot_path), intent_labels)
    intent_header, intent_rows = _read_tsv(intent_path)
    slot_header, slot_rows = _read_tsv(slot_path)
    assert (intent_header, slot_header) == ("label\ttext_a", "text_a\tlabel")
    assert len(intent_rows) == len(slot_rows) == len(utterances)
    for utterance, (label, text), (tokens, tags) in zip(utterances, intent_rows, slot_rows):
        assert labels[int(label)] == utterance.intent
        assert text.split(" ") == utterance.words
        assert tokens.split("\x02") == utterance.words
        assert tags.split("\x02") == utterance.tags
    return labels


def test_write_palm_tsv_round_trip_and_labels(tmp_path):
    utterances = [Utterance(["play", "Beyoncé's"], ["O", "B-artist"], "PlayMusic", "a#0"),
                  Utterance(["rain", "in", "São", "Paulo"], ["O", "O", "B-city", "I-city"],
                            "GetWeather", "b#0")]
    assert _round_trip(utterances, tmp_path) == ["GetWeather", "PlayMusic"]
    assert _round_trip(utterances, tmp_path, ["PlayMusic", "GetWeather", "Other"])[0] == "PlayMusic"
    assert intent_label_list(utterances) == ["GetWeather", "PlayMusic"]
    assert slot_label_map(utterances) == {"B-artist": 0, "B-city": 1, "I-city": 2, "O": 3}
    assert slot_label_map([Utterance(["x"], ["B-a"], "I", "s")]) == {"B-a": 0, "O": 1}
    with pytest.raises(ValueError, match="intent"):
        write_palm_tsv(utterances, str(tmp_path / "i.tsv"), intent_labels=["PlayMusic"])
    with pytest.raises(ValueError):
        write_palm_tsv(utterances)
    with pytest.raises(ValueError, match="x02"):
        write_palm_tsv([Utterance(["a\x02b"], ["O"], "I", "s")], slot_path=str(tmp_path / "s"))
    only_slots = tmp_path / "only_slots.tsv"
    write_palm_tsv(utterances, slot_path=str(only_slots))
    assert only_slots.read_text(encoding="utf-8").startswith("text_a\tlabel\nplay\x02Beyoncé's\t")


# ---------------------------------------------------------------- the real SNIPS data

real_data = pytest.mark.skipif(not SNIPS_DIR.is_dir(), reason="no SNIPS data at %s" % SNIPS_DIR)


@pytest.fixture(scope="module")
def snips_seed0():
    return load_snips(str(SNIPS_DIR), seed=0)


@real_data
def test_real_snips_counts(snips_seed0):
    assert {k: len(v) for k, v in snips_seed0.items()} == {"train": 13084, "dev": 700, "test": 700}
    intents = intent_label_list(snips_seed0["train"])
    assert len(intents) == 7
    for split in ("dev", "test"):
        assert intent_label_list(snips_seed0[split]) == intents
        assert all(sum(u.intent == i for u in snips_seed0[split]) == 100 for i in intents)
    every = snips_seed0["train"] + snips_seed0["dev"] + snips_seed0["test"]
    assert all(len(u.words) == len(u.tags) > 0 for u in every)
    assert len(slot_label_map(every)) == 72  # O + B-/I- tags of 39 slots (7 have no I- tag)
    pizza = [u for u in snips_seed0["train"] + snips_seed0["test"] if "\U0001f355" in u.words]
    assert len(pizza) == 1 and pizza[0].intent == "PlayMusic"  # the CESU-8 bytes, decoded


@real_data
def test_real_snips_split_depends_on_seed_only(snips_seed0):
    same = load_snips(str(SNIPS_DIR), seed=0)
    other = load_snips(str(SNIPS_DIR), seed=1)
    for split in ("train", "dev", "test"):
        assert [u.source for u in same[split]] == [u.source for u in snips_seed0[split]]
    assert [u.source for u in other["test"]] != [u.source for u in snips_seed0["test"]]
    assert [u.source for u in other["dev"]] == [u.source for u in snips_seed0["dev"]]
    seed0 = {u.source for u in snips_seed0["train"] + snips_seed0["test"]}
    assert seed0 == {u.source for u in other["train"] + other["test"]}
    assert len(seed0) == 13784


@real_data
def test_real_snips_tsv_round_trip(snips_seed0, tmp_path):
    labels = intent_label_list(snips_seed0["train"])
    for split in ("train", "dev", "test"):
        assert _round_trip(snips_seed0[split], tmp_path, labels) == labels
