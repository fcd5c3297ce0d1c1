"""Long inputs: chunking, batching whole documents, chunk pooling, sliding windows, layer features."""
import random

import numpy as np
import paddle
import pytest

import paddlepalm as palm
from paddlepalm.backbone.encoder import EncoderOutput
from paddlepalm.head.pooling import CHUNK_POOLS, AttentionPool, build_chunk_pool, sentence_vectors
from paddlepalm.head.sequence_label import merge_windows
from paddlepalm.reader.batching import Batcher, pad_batch
from paddlepalm.reader.chunking import chunk_spans, most_central_window, word_windows
from tests.helpers import overfit, predict_all, tiny_config, tiny_model, write_file, write_vocab

WORDS = "play jazz music by the rock in paris for two book a table what is the weather".split()


@pytest.fixture
def vocab(tmp_path):
    return write_vocab(str(tmp_path / "vocab"))


def _text(n, seed=0):
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n))


# ----------------------------------------------------------------------------- chunk spans
@pytest.mark.parametrize("length", [0, 1, 5, 6, 7, 23, 24, 100])
@pytest.mark.parametrize("budget,stride", [(6, 6), (6, 4), (6, 1), (8, 3)])
def test_chunks_cover_every_token_with_the_stride_overlap(length, budget, stride):
    spans = chunk_spans(length, budget, stride)
    counts = np.zeros(length, dtype=int)
    for start, end in spans:
        assert 0 <= start <= end <= length and end - start <= budget
        counts[start:end] += 1
    assert (counts >= 1).all()
    assert spans[-1][1] == length
    starts = [s for s, _ in spans]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)  # chunk order kept
    assert all(b - a == stride for a, b in zip(starts, starts[1:]))
    if stride == budget:
        assert (counts == 1).all()  # no overlap: every token exactly once
    for (s1, e1), (s2, _) in zip(spans, spans[1:]):  # neighbours overlap by budget - stride
        assert e1 - s2 == budget - stride


def test_chunk_caps_and_bad_strides():
    assert chunk_spans(30, 10, max_chunks=2) == [(0, 10), (10, 20)]
    with pytest.raises(ValueError, match="chunk_stride must be between 1 and the 10"):
        chunk_spans(30, 10, stride=11)
    with pytest.raises(ValueError, match="chunk_stride must be between"):
        chunk_spans(30, 10, stride=0)


def test_reader_chunks_are_the_document_in_order(vocab, tmp_path):
    texts = [_text(n, n) for n in (3, 20, 41)]
    path = write_file(tmp_path / "t.tsv", "label\ttext_a\n" + "".join("0\t%s\n" % t for t in texts))
    reader = palm.reader.ClassifyReader(vocab, 10, max_chunks=10, chunk_stride=5)
    reader.load_data(path, batch_size=3)
    tok = reader.tokenizer
    for text, feature in zip(texts, reader.features):
        ids = tok.pieces(text).ids
        spans = chunk_spans(len(ids), 8, 5)
        assert len(feature["chunks"]) == len(spans)
        for (start, end), chunk in zip(spans, feature["chunks"]):
            assert chunk["input_ids"] == [tok.cls_id] + ids[start:end] + [tok.sep_id]
        rebuilt = feature["chunks"][0]["input_ids"][1:-1]  # stitch chunks back: drop the overlaps
        for chunk in feature["chunks"][1:]:
            rebuilt += chunk["input_ids"][1:-1][3:]
        assert rebuilt == ids


def test_pairs_keep_text_a_in_every_chunk_and_long_documents_are_capped(vocab, tmp_path, caplog):
    path = write_file(tmp_path / "p.tsv", "label\ttext_a\ttext_b\n1\tplay jazz\t%s\n0\tbook\tthe table\n" % _text(40))
    reader = palm.reader.MatchReader(vocab, 12, max_chunks=3)
    reader.load_data(path, batch_size=2)
    tok = reader.tokenizer
    a = tok.pieces("play jazz").ids
    first = reader.features[0]["chunks"]
    assert len(first) == 3 and reader.num_cut_documents == 1 and "only their first 3 chunks" in caplog.text
    b = tok.pieces(_text(40)).ids
    budget = 12 - tok.special_count(pair=True) - len(a)
    for k, chunk in enumerate(first):
        assert chunk["input_ids"] == [tok.cls_id] + a + [tok.sep_id] + b[k * budget:(k + 1) * budget] + [tok.sep_id]
        assert chunk["token_type_ids"] == [0] * (len(a) + 2) + [1] * (budget + 1)
    with pytest.raises(ValueError, match="pointwise"):
        palm.reader.MatchReader(vocab, 12, max_chunks=3, learning_strategy="pairwise")
    with pytest.raises(ValueError, match="max_chunks_per_batch=2 must be >= max_chunks=3"):
        palm.reader.ClassifyReader(vocab, 12, max_chunks=3, max_chunks_per_batch=2)
    with pytest.raises(ValueError, match="chunk_stride needs max_chunks"):
        palm.reader.ClassifyReader(vocab, 12, chunk_stride=4)


# ----------------------------------------------------------------------------- batching
def _docs(chunk_counts):
    return [{"chunks": [{"input_ids": [d * 100 + k] * (3 + (k % 2))} for k in range(n)], "label": d,
             "feature_index": d} for d, n in enumerate(chunk_counts)]


def test_batches_keep_documents_whole_in_order_and_cap_rows():
    counts = [1, 5, 2, 7, 3, 3, 1, 6, 2, 4]
    docs = _docs(counts)
    batcher = Batcher(docs, batch_size=4, collate=lambda f, rng: pad_batch(f, {}), shuffle=True, seed=3,
                      bucket=True, max_rows=8)
    batches = list(batcher.iterate(1))
    assert len(batches) == batcher.steps_per_epoch()
    seen = []
    for b in batches:
        assert b["input_ids"].shape[0] <= 8 and len(b["label"]) <= 4
        for d, rows, mask in zip(b["label"], b["chunk_rows"], b["chunk_mask"]):
            n = counts[d]
            assert mask.tolist() == [1] * n + [0] * (len(mask) - n)
            firsts = b["input_ids"][rows[:n], 0].tolist()
            assert firsts == [d * 100 + k for k in range(n)]  # all of d's chunks, in order
            seen.append(int(d))
    assert sorted(seen) == list(range(len(counts)))
    with pytest.raises(ValueError, match="takes 7 encoder rows, more than max_rows=6"):
        Batcher(docs, 4, lambda f, rng: pad_batch(f, {}), max_rows=6)


def test_bucketing_still_groups_documents_by_length():
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 9, size=200).tolist()
    docs = _docs(counts)
    lengths = {}
    for bucket in (False, True):
        batcher = Batcher(docs, batch_size=4, collate=lambda f, r: pad_batch(f, {}), seed=1, bucket=bucket,
                          max_rows=32)
        lengths[bucket] = np.mean([np.ptp([counts[d] for d in b["label"]]) for b in batcher.iterate(1)])
    assert lengths[True] < 0.3 * lengths[False]


# ----------------------------------------------------------------------------- chunk pooling
@pytest.mark.parametrize("name", ["mean", "max", "attention"])
def test_chunk_pools_ignore_padding_and_match_numpy(name):
    paddle.seed(0)
    vectors = np.random.default_rng(1).normal(size=(6, 4)).astype("float32")
    rows = np.array([[0, 1, 2], [3, 0, 0], [4, 5, 0]])
    mask = np.array([[1, 1, 1], [1, 0, 0], [1, 1, 0]])
    pool = build_chunk_pool(name, 4)
    got = pool(paddle.to_tensor(vectors), paddle.to_tensor(rows), paddle.to_tensor(mask)).numpy()
    grouped = vectors[rows]
    if name == "attention":
        w = pool.weights(paddle.to_tensor(grouped), paddle.to_tensor(mask)).numpy()
        np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-6)  # sums to 1 over real chunks
        assert (w[mask == 0] == 0).all() and (w[mask == 1] > 0).all()  # padding chunks masked
        proj = pool.proj.weight.numpy(), pool.proj.bias.numpy()
        scores = np.tanh(grouped @ proj[0] + proj[1]) @ pool.score.weight.numpy()[:, 0]
        scores = np.where(mask == 1, scores, -np.inf)
        ref_w = np.exp(scores - scores.max(axis=1, keepdims=True))
        ref_w /= ref_w.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(w, ref_w, atol=1e-6)
        expected = (ref_w[..., None] * grouped).sum(axis=1)
    elif name == "mean":
        expected = np.stack([grouped[d, mask[d] == 1].mean(axis=0) for d in range(3)])
    else:
        expected = np.stack([grouped[d, mask[d] == 1].max(axis=0) for d in range(3)])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    shifted = vectors.copy()
    shifted[0] += 100.0  # row 0 is also what padding slots point at: real chunk of doc 0 only
    other = pool(paddle.to_tensor(shifted), paddle.to_tensor(rows), paddle.to_tensor(mask)).numpy()
    np.testing.assert_allclose(other[1:], got[1:], atol=1e-5)  # docs 1 and 2 do not see row 0


def test_chunk_pool_registry_names():
    assert CHUNK_POOLS.names() == ["attention", "max", "mean"]
    with pytest.raises(ValueError, match="unknown chunk pooling 'sum'"):
        build_chunk_pool("sum", 4)


# ----------------------------------------------------------------------------- layer features
def test_layer_representations_equal_numpy_reference():
    model = tiny_model("bert", num_hidden_layers=3)
    ids = paddle.to_tensor([[2, 7, 8, 9, 3], [2, 10, 3, 0, 0]])
    mask = paddle.to_tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    with paddle.no_grad():
        out = model(ids, attention_mask=mask, output_hidden_states=True)
    hs = np.stack([h.numpy() for h in out.hidden_states])  # [layers + 1, B, L, H]
    seq, m = out.sequence_output.numpy(), mask.numpy()[..., None]
    last2 = hs[-2:, :, 0]
    expected = {"pooled": out.pooled_output.numpy(), "cls": seq[:, 0],
                "mean_tokens": (seq * m).sum(1) / m.sum(1),
                "concat_layers": np.concatenate(list(last2), axis=-1), "mean_layers": last2.mean(0),
                "max_layers": last2.max(0)}
    for name, ref in expected.items():
        got = sentence_vectors(name, out, mask, last_layers=2).numpy()
        np.testing.assert_allclose(got, ref, atol=1e-6, err_msg=name)
    with pytest.raises(ValueError, match="last_layers=4, but the encoder has 3 layers"):
        sentence_vectors("max_layers", out, mask, last_layers=4)
    with pytest.raises(ValueError, match="needs the encoder's hidden states"):
        sentence_vectors("max_layers", EncoderOutput(out.sequence_output, out.pooled_output), mask, 2)


@pytest.mark.parametrize("representation,width", [("pooled", 32), ("concat_layers", 64), ("max_layers", 32)])
def test_heads_train_on_each_representation(vocab, tmp_path, representation, width):
    path = write_file(tmp_path / "t.tsv", "label\ttext_a\n0\tplay jazz music\n1\twhat is the weather\n"
                                          "0\tplay rock\n1\tweather in paris\n")
    reader = palm.reader.ClassifyReader(vocab, 16, seed=1).load_data(path, 4)
    head = palm.head.Classify(2, 32, representation=representation, last_layers=2)
    assert head.classifier.weight.shape == [width, 2]
    expected = {} if representation in ("pooled", "cls", "mean_tokens") else {"output_hidden_states": True}
    if representation != "mean_tokens":
        expected["first_token_only"] = True  # [CLS] rows only: the last layer may skip the rest
    assert head.encoder_options() == expected
    losses = overfit(reader, head, tiny_model("bert"), steps=40)
    assert losses[-1] < 0.1 < losses[0]
    with pytest.raises(ValueError, match="unknown sentence representation 'first'"):
        palm.head.Classify(2, 32, representation="first")


# ----------------------------------------------------------------------------- end to end
ROWS = [("0", "play jazz music " * 9 + "by the rock"), ("1", "what is the weather " * 3 + "in paris"),
        ("2", "book a table for two"), ("0", "play the rock " * 12), ("1", "is the weather " * 8),
        ("2", "book a table " * 10)]


@pytest.mark.parametrize("pooling", ["mean", "max", "attention"])
def test_chunked_classification_trains_predicts_loads_and_exports(vocab, tmp_path, pooling):
    from paddlepalm.export import Predictor, export_model

    path = write_file(tmp_path / "t.tsv", "label\ttext_a\n" + "".join("%s\t%s\n" % r for r in ROWS))
    opts = dict(max_chunks=6, chunk_stride=5, max_chunks_per_batch=12)
    reader = palm.reader.ClassifyReader(vocab, 8, seed=1, **opts).load_data(path, 6)
    assert max(len(f["chunks"]) for f in reader.features) == 6 and reader.num_cut_documents >= 1
    paddle.seed(0)
    backbone = palm.backbone.BERT.from_config(tiny_config("bert"))
    head = palm.head.Classify(3, 32, chunk_pooling=pooling)
    dev = reader.clone("dev").load_data(path, 4)
    trainer = palm.Trainer("doc", reader=reader, head=head, dev_reader=dev)
    engine = palm.MultiHeadTrainer([trainer], backbone=backbone)
    engine.fit(num_epochs=40, print_steps=0, optimizer=palm.optimizer.AdamW(lr=3e-3))
    metrics = trainer.predict(reader=dev, output_dir=str(tmp_path / "pred"))
    assert metrics["accuracy"] == 1.0
    lines = open(tmp_path / "pred" / "predictions.json").read().splitlines()
    assert len(lines) == len(ROWS)  # one prediction per document, not per chunk
    engine.save(str(tmp_path / "model"))
    model = palm.load(str(tmp_path / "model"))
    got = model.predict("doc", [t for _, t in ROWS], batch_size=4)
    assert [p["label"] for p in got] == [int(l) for l, _ in ROWS]
    np.testing.assert_allclose([p["probs"] for p in got],
                               [p["probs"] for p in model.predict("doc", [t for _, t in ROWS], batch_size=1)],
                               atol=1e-5)  # a document's vector does not depend on its batch
    export_model(engine, str(tmp_path / "export"))
    predictor = Predictor(str(tmp_path / "export"), "doc")
    assert {"chunk_rows", "chunk_mask"} <= set(predictor.spec["inputs"])
    batch = next(iter(dev.iterator(num_epochs=1)))
    np.testing.assert_allclose(predictor.run(batch)["logits"], engine.predict_one_batch("doc", batch)["logits"],
                               atol=1e-5)


def test_layer_features_export(vocab, tmp_path):
    from paddlepalm.export import Predictor, export_model

    path = write_file(tmp_path / "t.tsv", "label\ttext_a\n" + "".join("%s\t%s\n" % r for r in ROWS))
    reader = palm.reader.ClassifyReader(vocab, 8, max_chunks=4).load_data(path, 3)
    head = palm.head.Classify(3, 32, representation="concat_layers", last_layers=2, chunk_pooling="attention")
    trainer = palm.Trainer("doc", reader=reader, head=head, dev_reader=reader.clone("dev").load_data(path, 3))
    engine = palm.MultiHeadTrainer([trainer], backbone=palm.backbone.BERT.from_config(tiny_config("bert")))
    engine.fit(num_epochs=1, print_steps=0)
    export_model(engine, str(tmp_path / "export"))
    batch = next(iter(trainer.dev_reader.iterator(num_epochs=1)))
    np.testing.assert_allclose(Predictor(str(tmp_path / "export"), "doc").run(batch)["logits"],
                               engine.predict_one_batch("doc", batch)["logits"], atol=1e-5)


# ----------------------------------------------------------------------------- windows
def _brute_force_central(windows, lengths):
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    out = []
    for w in range(len(lengths)):
        best, best_score = (-1, -1), -1
        for k, (first, end) in enumerate(windows):
            if first <= w < end:
                score = min(offsets[w] - offsets[first], offsets[end] - offsets[w + 1])
                if score > best_score:
                    best, best_score = (k, w - first), score
        out.append(best)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_windows_cover_words_and_merge_picks_the_most_central(seed):
    rng = random.Random(seed)
    lengths = [rng.randint(1, 3) for _ in range(rng.randint(1, 60))]
    budget = rng.randint(4, 12)
    stride = rng.randint(1, budget)
    windows = word_windows(lengths, budget, stride)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    assert windows[0][0] == 0 and windows[-1][1] == len(lengths)
    for (f1, e1), (f2, e2) in zip(windows, windows[1:]):
        assert f1 < f2 <= e1  # in order, no word skipped
    for first, end in windows:
        assert offsets[end] - offsets[first] <= budget or end == first + 1
    placed = most_central_window(windows, lengths)
    assert placed == _brute_force_central(windows, lengths)
    assert all(k >= 0 for k, _ in placed)


def test_most_central_window_example():
    # words of one piece each; windows [0, 6) and [3, 9): word 4 is 4 from the left edge of window 0 but
    # 1 from its right edge; in window 1 it is 1 from the left edge: a tie, the earlier window wins
    windows = [(0, 6), (3, 9)]
    placed = most_central_window(windows, [1] * 9)
    assert placed == [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (1, 3), (1, 4), (1, 5)]


def test_merge_windows_gathers_each_words_logits():
    rows, width, classes = 5, 4, 3
    logits = np.arange(rows * width * classes, dtype="float32").reshape(rows, width, classes)
    chunk_rows = np.array([[0, 1, 2], [3, 4, 0]])
    word_chunk = np.array([[0, 1, 1, 2], [1, 0, 0, 0]])
    word_slot = np.array([[0, 3, 2, 1], [2, 1, 0, 0]])
    got = merge_windows(*(paddle.to_tensor(a) for a in (logits, chunk_rows, word_chunk, word_slot))).numpy()
    expected = np.stack([[logits[chunk_rows[d, word_chunk[d, w]], word_slot[d, w]] for w in range(4)]
                         for d in range(2)])
    np.testing.assert_array_equal(got, expected)


def _slot_file(tmp_path, copies):
    words = "play jazz music by the rock in paris for two".split()
    tags = ["O", "B-genre", "O", "O", "O", "B-artist", "O", "B-city", "O", "B-num"]
    lines = ["%s\t%s" % (" ".join(words * k), " ".join(tags * k)) for k in copies]
    return write_file(tmp_path / ("s%d.tsv" % len(copies)), "text_a\tlabel\n" + "\n".join(lines) + "\n")


def test_windowed_sequence_labelling_is_word_level_for_the_whole_input(vocab, tmp_path):
    path = _slot_file(tmp_path, [1, 2, 4, 6])
    reader = palm.reader.SequenceLabelReader(vocab, 12, token_sep=" ", seed=0, window_stride=5,
                                             max_chunks_per_batch=20).load_data(path, 4)
    assert [f["num_words"] for f in reader.features] == [10, 20, 40, 60]
    assert reader.num_truncated == 0
    head = palm.head.SequenceLabel(reader.num_classes, 32)
    backbone = tiny_model("bert")
    losses = overfit(reader, head, backbone, steps=80)
    assert losses[-1] < 0.05
    records, metrics = predict_all(reader.clone("dev").load_data(path, 2), head, backbone, str(tmp_path / "o"))
    assert metrics["f1"] == 1.0
    assert sorted(len(r["label_ids"]) for r in records) == [10, 20, 40, 60]
    # a short input read through windows gets the same logits as without them
    short = _slot_file(tmp_path, [1])
    plain = palm.reader.SequenceLabelReader(vocab, 8, token_sep=" ", label_map_config=reader.label_vocab(),
                                            phase="dev").load_data(short, 1)
    windowed = palm.reader.SequenceLabelReader(vocab, 40, token_sep=" ", window_stride=10,
                                               label_map_config=reader.label_vocab(), phase="dev").load_data(short, 1)
    plain40 = palm.reader.SequenceLabelReader(vocab, 40, token_sep=" ", label_map_config=reader.label_vocab(),
                                              phase="dev").load_data(short, 1)
    assert plain.features[0]["num_words"] < 10  # truncation loses words ...
    from paddlepalm.forward import run_task, to_tensors

    with paddle.no_grad():
        a = run_task(backbone, head, to_tensors(next(iter(windowed))))["logits"].numpy()
        b = run_task(backbone, head, to_tensors(next(iter(plain40))))["logits"].numpy()
    np.testing.assert_allclose(a, b, atol=1e-5)  # ... one window equals the plain reading


def test_windows_cap_and_options(vocab, tmp_path, caplog):
    path = _slot_file(tmp_path, [6])
    reader = palm.reader.SequenceLabelReader(vocab, 12, token_sep=" ", window_stride=10, max_windows=2,
                                             phase="dev", label_map_config=["O", "B-genre", "B-artist", "B-city",
                                                                            "B-num"]).load_data(path, 1)
    f = reader.features[0]
    assert len(f["chunks"]) == 2 and f["num_words"] == 20 and reader.num_truncated == 1
    assert "max_windows=2 windows" in caplog.text
    with pytest.raises(ValueError, match="window_stride must be between 1 and the 10"):
        palm.reader.SequenceLabelReader(vocab, 12, window_stride=11)
    with pytest.raises(ValueError, match="max_windows needs window_stride"):
        palm.reader.SequenceLabelReader(vocab, 12, max_windows=3)


# ----------------------------------------------------------------------------- YAML
LONG_CONFIG = """\
backbone:
  config: tiny.json
tokenizer:
  vocab: vocab.txt
max_len: 8
tasks:
  doc:
    reader: {type: classify, max_chunks: 4, chunk_stride: 3, max_chunks_per_batch: 8}
    head: {type: classify, chunk_pooling: attention, representation: max_layers, last_layers: 2}
    train: doc.tsv
    dev: doc.tsv
  slot:
    reader: {type: sequence_label, token_sep: " ", window_stride: 4, max_windows: 8}
    train: slot.tsv
"""


@pytest.fixture
def long_workdir(tmp_path):
    import json

    write_vocab(str(tmp_path))
    (tmp_path / "tiny.json").write_text(json.dumps(tiny_config()))
    write_file(tmp_path / "doc.tsv", "label\ttext_a\n" + "".join("%s\t%s\n" % r for r in ROWS))
    write_file(tmp_path / "slot.tsv", "text_a\tlabel\nplay jazz music by the rock\tO B-genre O O O B-artist\n")
    return tmp_path


def test_yaml_long_text_options_build_and_train(long_workdir):
    from paddlepalm.config import build_run, load_config

    path = write_file(long_workdir / "c.yaml", LONG_CONFIG)
    run = build_run(load_config(path))
    doc, slot = run.trainers
    assert (doc.reader.max_chunks, doc.reader.chunk_stride, doc.reader.max_rows_per_batch) == (4, 3, 8)
    assert isinstance(doc.head.encoding.chunk_pool, AttentionPool) and doc.head.encoding.representation == "max_layers"
    assert slot.reader.window_stride == 4 and "chunks" in slot.reader.features[0]
    run.engine.fit(num_epochs=1, print_steps=0)


@pytest.mark.parametrize("edit, key, message", [
    (("chunk_pooling: attention", "chunk_pooling: sum"), "tasks.doc.head.chunk_pooling",
     "'sum' is not one of attention, max, mean"),
    (("representation: max_layers", "representation: max_layer"), "tasks.doc.head.representation",
     "(did you mean 'max_layers'?)"),
    (("last_layers: 2", "last_layers: 0"), "tasks.doc.head.last_layers", "must be >= 1, got 0"),
    (("max_chunks: 4", "max_chunks: four"), "tasks.doc.reader.max_chunks", "expected integer, got 'four'"),
    (("max_chunks: 4", "max_chunks: 9"), "tasks.doc.reader.max_chunks", "9 is more than max_chunks_per_batch=8"),
    (("chunk_stride: 3", "chunk_stride: 7"), "tasks.doc.reader.chunk_stride",
     "7 is more than the 6 pieces a chunk of max_len=8 holds"),
    (("window_stride: 4", "window_stride: 0"), "tasks.slot.reader.window_stride", "must be >= 1, got 0"),
    (("max_windows: 8", "max_windows: 100"), "tasks.slot.reader.max_windows", "100 is more than max_chunks_per_batch=64"),
    (("max_windows: 8", "max_window: 8"), "tasks.slot.reader.max_window", "(did you mean 'max_windows'?)"),
])
def test_yaml_long_text_options_are_validated(long_workdir, edit, key, message):
    from paddlepalm.config import load_config
    from paddlepalm.errors import ConfigError

    path = write_file(long_workdir / "c.yaml", LONG_CONFIG.replace(*edit))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = info.value.problems
    assert len(problems) == 1 and problems[0].key == key and message in problems[0].message, str(info.value)
    line = next(i for i, l in enumerate(LONG_CONFIG.replace(*edit).splitlines(), 1) if edit[1] in l)
    assert problems[0].origin == "%s:%d" % (path, line)


def test_schema_choices_are_the_registered_names():
    from paddlepalm.config.schema import CHUNK_POOLINGS, REPRESENTATIONS
    from paddlepalm.head.pooling import REPRESENTATIONS as registered

    assert list(CHUNK_POOLINGS) == CHUNK_POOLS.names() and list(REPRESENTATIONS) == registered.names()


def test_data_parallel_slices_keep_documents_whole():
    from paddlepalm.distributed import shard_range, slice_batch

    counts = [2, 1, 3, 1, 4]
    batch = pad_batch(_docs(counts), {})
    paddle.seed(0)
    pool = build_chunk_pool("attention", 1)
    vectors = lambda b: paddle.to_tensor(b["input_ids"][:, :1].astype("float32"))
    full = pool(vectors(batch), paddle.to_tensor(batch["chunk_rows"]), paddle.to_tensor(batch["chunk_mask"])).numpy()
    parts = []
    for rank in range(3):
        lo, hi = shard_range(len(counts), rank, 3)
        part = slice_batch(batch, lo, hi)
        assert part["label"].tolist() == list(range(lo, hi))
        assert part["input_ids"].shape[0] == sum(counts[lo:hi])
        parts.append(pool(vectors(part), paddle.to_tensor(part["chunk_rows"]),
                          paddle.to_tensor(part["chunk_mask"])).numpy())
    np.testing.assert_allclose(np.concatenate(parts), full, atol=1e-6)
    single = pad_batch(_docs([1, 1, 1]), {})  # as many rows as documents
    part = slice_batch(single, 1, 3)
    assert part["chunk_rows"].tolist() == [[0], [1]] and part["input_ids"][:, 0].tolist() == [100, 200]
