import json
import os

import pytest

from paddlepalm.errors import CheckpointError
from paddlepalm.tokenizer import Tokenizer, keep_indices, pair_budgets, read_vocab_txt
from tests.helpers import minilm_dir, write_vocab

GOLDEN = json.load(open(os.path.join(os.path.dirname(__file__), "fixtures", "tokenizer_golden.json"),
                        encoding="utf-8"))


@pytest.fixture(scope="module")
def vocab_path():
    return os.path.join(minilm_dir(), "vocab.txt")


@pytest.mark.parametrize("source", ["vocab.txt", "tokenizer.json"])
def test_uncased_matches_reference(source, vocab_path):
    tok = (Tokenizer.from_vocab(vocab_path, do_lower_case=True) if source == "vocab.txt"
           else Tokenizer.from_pretrained(minilm_dir()))
    for sample in GOLDEN["samples"]:
        enc = tok.encode(sample["text"])
        assert enc.ids == sample["uncased_ids"], sample["text"]
        assert tok.tokenize(sample["text"]) == sample["uncased_tokens"], sample["text"]
        assert [list(o) for o in enc.offsets] == sample["uncased_offsets"], sample["text"]
    for pair in GOLDEN["pairs"]:
        enc = tok.encode(pair["text_a"], pair["text_b"])
        assert enc.ids == pair["uncased_ids"] and enc.type_ids == pair["token_type_ids"]


def test_cased_matches_reference(vocab_path):
    tok = Tokenizer.from_vocab(vocab_path, do_lower_case=False)
    for sample in GOLDEN["samples"]:
        assert tok.encode(sample["text"]).ids == sample["cased_ids"], sample["text"]
        assert tok.tokenize(sample["text"]) == sample["cased_tokens"], sample["text"]


def test_chinese_characters_are_split(vocab_path):
    tok = Tokenizer.from_vocab(vocab_path)
    assert tok.tokenize("中国人") == ["中", "国", "人"]


def test_truncation_strategies():
    assert keep_indices(10, 4, "head") == [0, 1, 2, 3]
    assert keep_indices(10, 4, "tail") == [6, 7, 8, 9]
    assert keep_indices(10, 4, "head+tail") == [0, 7, 8, 9]
    assert keep_indices(3, 4, "tail") == [0, 1, 2]
    assert pair_budgets(10, 3, 8) == (5, 3)
    assert pair_budgets(4, 9, 8) == (4, 4)
    with pytest.raises(ValueError, match="unknown truncation strategy 'middle'"):
        keep_indices(10, 4, "middle")


def test_encode_truncates_pairs_and_keeps_offsets(tmp_path):
    tok = Tokenizer.from_vocab(write_vocab(str(tmp_path)))
    text = "play the song by the playlist"
    enc = tok.encode(text, "what is the weather", max_len=9, truncation="tail")
    assert len(enc) == 9
    assert enc.ids[0] == tok.cls_id and enc.ids[-1] == tok.sep_id
    a_tokens = [i for i, s in enumerate(enc.sequence_ids) if s == 0]
    # tail keeps the end of text_a: "... the playlist"
    assert text[enc.offsets[a_tokens[-1]][0]:enc.offsets[a_tokens[-1]][1]] == "playlist"
    assert enc.type_ids == [0] * (len(a_tokens) + 2) + [1] * (9 - len(a_tokens) - 2)
    head = tok.encode(text, max_len=5, truncation="head")
    assert tok.convert_ids_to_tokens(head.ids) == ["[CLS]", "play", "the", "song", "[SEP]"]
    both = tok.encode(text, max_len=6, truncation="head+tail")
    assert tok.convert_ids_to_tokens(both.ids) == ["[CLS]", "play", "by", "the", "playlist", "[SEP]"]


def test_word_pieces_align_to_words(tmp_path):
    tok = Tokenizer.from_vocab(write_vocab(str(tmp_path)))
    pieces = tok.word_pieces_batch([["playing", "rock", "songs"]])[0]
    assert tok.convert_ids_to_tokens(pieces.ids) == ["play", "##ing", "rock", "song", "##s"]
    assert pieces.word_ids == [0, 0, 1, 2, 2]


def test_ernie_tab_vocab(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\t0\n[CLS]\t1\n[SEP]\t2\n[UNK]\t3\n[MASK]\t4\nhello\t5\n", encoding="utf-8")
    tok = Tokenizer.from_vocab(str(path))
    assert tok.encode("hello there").ids == [1, 5, 3, 2]
    path.write_text("[PAD]\t0\nhello\tfive\n", encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"vocab\.txt: line 2"):
        read_vocab_txt(str(path))


def test_missing_special_token_is_named(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[UNK]\nhello\n", encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"'\[CLS\]' is not in the vocabulary"):
        Tokenizer.from_vocab(str(path))


def test_byte_level_bpe_roberta_layout(tmp_path):
    from tokenizers import ByteLevelBPETokenizer

    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(["hello world, the weather in paris is sunny"] * 20, vocab_size=300,
                                special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    trainer.save_model(str(tmp_path))
    tok = Tokenizer.from_bpe(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    assert tok.is_bpe and (tok.cls_id, tok.pad_id, tok.sep_id) == (0, 1, 2)
    enc = tok.encode("hello world", "the weather")
    assert enc.ids[0] == 0 and enc.ids.count(2) == 3  # <s> a </s></s> b </s>
    assert set(enc.type_ids) == {0}
    text = "hello world"
    spans = [text[s:e] for (s, e), q in zip(enc.offsets, enc.sequence_ids) if q == 0]
    assert "".join(spans).replace(" ", "") == "helloworld" and spans[-1].strip() == "world"
    assert tok.decode(tok.pieces(text).ids) == text
    saved = tok.save(str(tmp_path / "saved"))
    again = Tokenizer.from_pretrained(str(tmp_path / "saved"))
    assert again.encode("hello world").ids == tok.encode("hello world").ids and len(saved) == 3
