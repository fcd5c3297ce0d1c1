import json

import numpy as np
import paddle
import pytest

import paddlepalm as palm
from paddlepalm.forward import run_task, to_tensors
from tests.helpers import SPECIALS, TINY_WORDS, overfit, predict_all, tiny_model, write_vocab

TEXTS = ["play jazz music by the rock song", "what is the weather in paris tomorrow",
         "book a table for two at the restaurant", "find the movie schedule at the cinema",
         "he wrote a great novel and she was born in paris", "i want to add this song to my playlist"]


@pytest.fixture
def vocab(tmp_path):
    return write_vocab(str(tmp_path / "vocab"))


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def _tsv(tmp_path, texts, name="t.tsv"):
    return _write(tmp_path / name, "text_a\n" + "".join(t + "\n" for t in texts))


def _txt(tmp_path, rows, name="t.txt"):
    return _write(tmp_path / name, "".join(r + "\n" for r in rows))


def test_learns_masked_tokens_with_tied_embeddings(tmp_path, vocab):
    path = _tsv(tmp_path, TEXTS)
    reader = palm.reader.MaskLMReader(vocab, 24, seed=5).load_data(path, 6, 1, shuffle_train=False)
    batch = next(reader.iterator(num_epochs=1))
    assert {"input_ids", "token_type_ids", "attention_mask", "mlm_mask", "mlm_labels"} <= set(batch)
    backbone = tiny_model("bert")
    reader.register_with(backbone)
    head = palm.head.MaskLM(32, backbone.config.vocab_size)
    losses = overfit(reader.load_data(path, 6, 1, shuffle_train=False), head, backbone, steps=80, lr=5e-3)
    assert losses[-1] < 0.05 < losses[0]
    dev = reader.clone("dev").load_data(path, 6)  # same seed, epoch 0, batch 0: the same masks
    records, metrics = predict_all(dev, head, backbone, str(tmp_path / "out"))
    assert metrics["accuracy"] == 1.0 and 1.0 <= metrics["perplexity"] < 1.1
    lines = [json.loads(line) for line in open(tmp_path / "out" / "predictions.json")]
    assert [line["index"] for line in lines] == list(range(6))
    gold = batch["mlm_labels"]
    for line in lines:
        assert line["positions"] == np.flatnonzero(batch["mlm_mask"][line["index"]]).tolist()
        assert line["word_ids"] == gold[line["index"]][line["positions"]].tolist()
        assert line["tokens"] == dev.tokenizer.convert_ids_to_tokens(line["word_ids"])


def test_predict_fills_given_mask_tokens(tmp_path, vocab):
    path = _tsv(tmp_path, ["play [MASK] music", "the [MASK] in [MASK] is sunny", "no mask here at all"])
    reader = palm.reader.MaskLMReader(vocab, 24, seed=0, phase="predict").load_data(path, 3)
    tok = reader.tokenizer
    assert tok.convert_ids_to_tokens(reader.features[0]["input_ids"]) == \
        ["[CLS]", "play", "[MASK]", "music", "[SEP]"]
    batch = next(iter(reader))
    assert np.flatnonzero(batch["mlm_mask"][0]).tolist() == [2]
    assert np.flatnonzero(batch["mlm_mask"][1]).tolist() == [2, 4]
    assert (batch["mlm_labels"][:2] == -100).all()  # given masks: predicted, not labelled
    assert batch["input_ids"][0].tolist()[:5] == reader.features[0]["input_ids"]
    assert batch["mlm_mask"][2].sum() >= 1 and (batch["mlm_labels"][2] != -100).sum() >= 1
    backbone = tiny_model("bert")
    head = palm.head.MaskLM(32, backbone.config.vocab_size)
    head.attach_backbone(backbone)
    records, metrics = predict_all(reader.load_data(path, 3), head, backbone, str(tmp_path / "out"))
    assert set(metrics) == {"accuracy", "perplexity"}  # from the randomly masked third row
    assert [r["positions"] for r in records[:2]] == [[2], [2, 4]]
    assert all(len(r["word_ids"]) == len(r["positions"]) for r in records)


def _stats_reader(tmp_path, vocab, rows=400, seed=11):
    rng = np.random.default_rng(0)
    words = [w for w in TINY_WORDS if not w.startswith("##")]
    lines = [" ".join(rng.choice(words, size=rng.integers(1, 30))) for _ in range(rows)]
    path = _txt(tmp_path, lines[:rows // 2] + [""] + lines[rows // 2:], "stats.txt")
    return palm.reader.MaskLMReader(vocab, 64, seed=seed).load_data(path, 32, 2, file_format="txt")


def test_masking_statistics(tmp_path, vocab):
    reader = _stats_reader(tmp_path, vocab)
    assert reader.num_examples == 400  # the blank line is skipped
    tok = reader.tokenizer
    specials = {tok.cls_id, tok.sep_id, tok.pad_id, tok.unk_id, tok.mask_id}
    original = {}
    counts = dict(chosen=0, candidates=0, masked=0, random=0, kept=0)
    for batch in reader.iterator(num_epochs=1):
        for i, fi in enumerate(batch["feature_index"]):
            ids = np.array(reader.features[fi]["input_ids"])
            n = len(ids)
            chosen = np.flatnonzero(batch["mlm_mask"][i][:n])
            assert len(chosen) >= 1
            assert not set(ids[chosen].tolist()) & specials
            assert (batch["mlm_labels"][i][chosen] == ids[chosen]).all()
            assert (np.delete(batch["mlm_labels"][i], chosen) == -100).all()
            inputs = batch["input_ids"][i][:n]
            unchosen = np.setdiff1d(np.arange(n), chosen)
            assert (inputs[unchosen] == ids[unchosen]).all()
            assert not set(inputs[chosen].tolist()) & (specials - {tok.mask_id})
            counts["chosen"] += len(chosen)
            counts["candidates"] += int(np.isin(ids, list(specials), invert=True).sum())
            counts["masked"] += int((inputs[chosen] == tok.mask_id).sum())
            counts["kept"] += int((inputs[chosen] == ids[chosen]).sum())
            original[int(fi)] = chosen.tolist()
    assert len(original) == 400
    rate = counts["chosen"] / counts["candidates"]
    assert 0.14 < rate < 0.17  # rows of 1-6 tokens still get one mask, which lifts the rate slightly
    counts["random"] = counts["chosen"] - counts["masked"] - counts["kept"]
    assert abs(counts["masked"] / counts["chosen"] - 0.8) < 0.04
    assert abs(counts["random"] / counts["chosen"] - 0.1) < 0.03
    assert abs(counts["kept"] / counts["chosen"] - 0.1) < 0.03


def _masks_by_feature(batches):
    return {int(fi): b["mlm_mask"][i].tolist() + b["input_ids"][i].tolist()
            for b in batches for i, fi in enumerate(b["feature_index"])}


def test_masks_differ_across_epochs_and_repeat_for_the_same_seed(tmp_path, vocab):
    reader = _stats_reader(tmp_path, vocab, rows=64)
    steps = reader.steps_per_epoch
    batches = list(reader.iterator(num_epochs=2))
    epoch0, epoch1 = _masks_by_feature(batches[:steps]), _masks_by_feature(batches[steps:])
    assert sum(epoch0[k] != epoch1[k] for k in epoch0) > 0.9 * len(epoch0)
    again = list(_stats_reader(tmp_path, vocab, rows=64).iterator(num_epochs=2))
    assert all((a["input_ids"] == b["input_ids"]).all() and (a["mlm_labels"] == b["mlm_labels"]).all()
               for a, b in zip(batches, again))
    other_seed = list(_stats_reader(tmp_path, vocab, rows=64, seed=12).iterator(num_epochs=1))
    assert _masks_by_feature(other_seed) != epoch0
    # resume mid-epoch: a fresh reader with the saved state serves exactly the remaining batches
    first = _stats_reader(tmp_path, vocab, rows=64)
    it = first.iterator(num_epochs=2)
    for _ in range(steps + 1):
        next(it)
    state = first.state_dict()
    resumed = _stats_reader(tmp_path, vocab, rows=64)
    resumed.set_state_dict(state)
    rest = list(resumed.iterator(num_epochs=2))
    assert len(rest) == len(batches) - steps - 1
    for a, b in zip(rest, batches[steps + 1:]):
        assert (a["feature_index"] == b["feature_index"]).all() and (a["input_ids"] == b["input_ids"]).all()
        assert (a["mlm_mask"] == b["mlm_mask"]).all()


def test_projection_is_tied_to_word_embeddings(vocab):
    backbone = tiny_model("bert")
    vocab_size, hidden = backbone.config.vocab_size, backbone.config.hidden_size
    head = palm.head.MaskLM(hidden, vocab_size)
    shapes = [tuple(p.shape) for p in head.parameters()]
    assert (vocab_size, hidden) not in shapes and (hidden, vocab_size) not in shapes
    assert (vocab_size,) in shapes  # the head's own output bias
    with pytest.raises(RuntimeError, match="attach_backbone"):
        head.word_logits(paddle.ones([1, hidden]))
    head.attach_backbone(backbone)
    assert head.backbone is backbone and all(p is not q for p in head.parameters()
                                            for q in backbone.parameters())
    hidden_states = paddle.randn([3, hidden])
    before = head.word_logits(hidden_states).numpy()
    weight = backbone.embeddings.word_embeddings.weight
    with paddle.no_grad():
        weight.set_value(weight * 2.0 + 0.1)
    after = head.word_logits(hidden_states).numpy()
    assert before.shape == (3, vocab_size) and not np.allclose(before, after)
    with pytest.raises(ValueError, match="does not match"):
        palm.head.MaskLM(hidden, vocab_size + 1).attach_backbone(backbone)


def test_loss_backpropagates_into_the_tied_table(tmp_path, vocab):
    path = _tsv(tmp_path, TEXTS[:2])
    reader = palm.reader.MaskLMReader(vocab, 24, seed=0).load_data(path, 2, 1)
    backbone = tiny_model("bert")
    head = palm.head.MaskLM(32, backbone.config.vocab_size)
    head.attach_backbone(backbone)
    batch = to_tensors(next(iter(reader)))
    out = run_task(backbone, head, batch)
    assert out["word_ids"].shape == [int(batch["mlm_mask"].sum())]  # logits only where masked
    out["loss"].backward()
    grad = backbone.embeddings.word_embeddings.weight.grad.numpy()
    assert np.abs(grad).sum(1).astype(bool).sum() == backbone.config.vocab_size  # full softmax via tied table


def test_text_pairs_txt_format_and_registry(tmp_path, vocab):
    assert palm.reader.READERS.get("mask_lm") is palm.reader.MaskLMReader
    assert palm.head.HEADS.get("mask_lm") is palm.head.MaskLM
    path = _write(tmp_path / "p.tsv", "text_a\ttext_b\nplay jazz\tthe rock song\nhello\tworld\n")
    reader = palm.reader.MaskLMReader(vocab, 16, seed=0).load_data(path, 2)
    assert reader.features[0]["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert "mlm_labels" in reader.outputs_attr
    with pytest.raises(ValueError, match="mask_prob"):
        palm.reader.MaskLMReader(vocab, 16, mask_prob=0.0)
    no_mask = write_vocab(str(tmp_path / "nomask"), TINY_WORDS)
    with open(no_mask, "w", encoding="utf-8") as f:
        f.write("\n".join([s for s in SPECIALS if s != "[MASK]"] + TINY_WORDS) + "\n")
    with pytest.raises(ValueError, match="no mask token"):
        palm.reader.MaskLMReader(no_mask, 16)
