"""MaskLMReader(whole_word_mask=True): WordPiece ``##`` continuations are masked with their word."""
import numpy as np
import pytest

import paddlepalm as palm
from paddlepalm.reader.mask_lm import word_spans
from tests.helpers import SPECIALS, write_file

WORDS = ["un", "##believ", "##able", "token", "##ization", "of", "em", "##bed", "##ding", "##s", "works", "fine"]


@pytest.fixture
def vocab(tmp_path):
    return write_file(tmp_path / "vocab.txt", "\n".join(SPECIALS + WORDS) + "\n")


def test_word_spans_join_adjacent_continuations():
    spans = word_spans(np.array([1, 2, 3, 5, 6, 8]), np.array([False, True, True, False, True, True]))
    assert [s.tolist() for s in spans] == [[1, 2, 3], [5, 6], [8]]  # 8 does not follow 6


def test_whole_words_are_masked_together(vocab):
    reader = palm.reader.MaskLMReader(vocab, 32, whole_word_mask=True, mask_prob=0.3, seed=0)
    ids = np.array(reader.to_features({"text_a": "unbelievable tokenization of embeddings works fine"})["input_ids"])
    tokens = reader.tokenizer.convert_ids_to_tokens(ids)
    continues = np.array([t.startswith("##") for t in tokens])
    rng = np.random.default_rng(0)
    covered = []
    for _ in range(300):
        out, mask, labels = reader.mask_row(ids, rng)
        chosen = mask.astype(bool)
        assert chosen.any() and not chosen[0] and not chosen[-1]
        # a chosen continuation implies the piece before it is chosen too, and the reverse
        assert not (chosen[1:] & continues[1:] & ~chosen[:-1]).any()
        assert not (chosen[:-1] & continues[1:] & ~chosen[1:]).any()
        np.testing.assert_array_equal(labels[chosen], ids[chosen])
        assert (labels[~chosen] == -100).all()
        # the whole word gets one fate: all masked or none
        masked = out == reader.tokenizer.mask_id
        for span in word_spans(np.flatnonzero(chosen), continues[chosen]):
            assert masked[span].all() or not masked[span].any()
        covered.append(chosen.sum() / (len(ids) - 2))
    assert 0.2 < np.mean(covered) < 0.4  # about mask_prob of the tokens, in whole words


def test_default_masking_is_unchanged_by_the_option(vocab):
    a = palm.reader.MaskLMReader(vocab, 32, seed=0)
    ids = np.array(a.to_features({"text_a": "unbelievable tokenization of embeddings"})["input_ids"])
    first = a.mask_row(ids, np.random.default_rng(3))
    again = palm.reader.MaskLMReader(vocab, 32, seed=0, whole_word_mask=False).mask_row(ids, np.random.default_rng(3))
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x, y)
