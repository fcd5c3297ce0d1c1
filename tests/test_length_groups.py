"""Inference batches split into length-sorted sub-batches (reader.batching.length_groups)."""
import itertools

import numpy as np
import pytest

import paddlepalm as palm
from paddlepalm.reader.batching import Batcher, length_groups, pad_batch
from tests.deploy_fixtures import CLS_TEXTS, CONTEXT, MATCH_PAIRS, SLOT_TEXTS, build_model


def _cost(groups, lengths, call_cost):
    return sum(call_cost + len(g) * max(lengths[i] for i in g) for g in groups)


def _brute_force(lengths, call_cost):
    """Least cost over every way to cut the length-sorted rows into consecutive groups."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    best = None
    for cuts in itertools.product((False, True), repeat=len(order) - 1):
        groups, current = [], [order[0]]
        for cut, i in zip(cuts, order[1:]):
            if cut:
                groups.append(current)
                current = []
            current.append(i)
        groups.append(current)
        cost = _cost(groups, lengths, call_cost)
        best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_length_groups_cover_every_row_once_at_the_least_cost(seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 40, size=int(rng.integers(1, 11))).tolist()
    for call_cost in (0, 5, 32, 10 ** 6):
        groups = length_groups(lengths, call_cost)
        assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
        assert _cost(groups, lengths, call_cost) == _brute_force(lengths, call_cost)
        longest = [max(lengths[i] for i in g) for g in groups]
        assert longest == sorted(longest)  # shortest group first
    assert len(length_groups(lengths, 10 ** 6)) == 1  # a call costs more than any padding


def test_length_groups_split_only_when_padding_costs_more_than_a_call():
    lengths = [4, 4, 4, 4, 30, 30]
    assert length_groups(lengths, 200) == [[0, 1, 2, 3, 4, 5]]  # padding 4 rows by 26 = 104 < 200
    assert length_groups(lengths, 50) == [[0, 1, 2, 3], [4, 5]]
    assert length_groups([], 32) == []


def _features(lengths):
    return [{"input_ids": list(range(1, n + 1)), "feature_index": i} for i, n in enumerate(lengths)]


def test_batcher_splits_inference_batches_within_their_batch():
    lengths = [3, 20, 4, 21, 5, 3, 22, 4]
    batcher = Batcher(_features(lengths), 4, lambda feats, rng: pad_batch(feats, {}), shuffle=False,
                      split_cost=8)
    batches = list(batcher.iterate(1))
    seen = [int(i) for b in batches for i in b["feature_index"]]
    assert sorted(seen) == list(range(8))
    # every sub-batch stays inside its batch of 4 consecutive inputs, padded to its own longest row
    for b in batches:
        idx = set(int(i) for i in b["feature_index"])
        assert idx <= {0, 1, 2, 3} or idx <= {4, 5, 6, 7}
        assert b["input_ids"].shape[1] == max(lengths[i] for i in idx)
    assert batcher.steps_per_epoch() == len(batches) == 4
    padded = sum(b["input_ids"].size for b in batches)
    assert padded == 2 * 4 + 2 * 21 + 3 * 5 + 1 * 22  # against 4 * 21 + 4 * 22 = 172 without the split
    with pytest.raises(ValueError, match="inference batches"):
        Batcher(_features(lengths), 4, lambda feats, rng: pad_batch(feats, {}), shuffle=True, split_cost=8)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return palm.load(build_model(str(tmp_path_factory.mktemp("groups"))))


def test_predictions_are_the_same_with_and_without_the_split(model, monkeypatch):
    import paddlepalm.engine.inference as inference

    inputs = {"cls": CLS_TEXTS * 3, "slot": SLOT_TEXTS * 3, "match": MATCH_PAIRS * 3,
              "qa": [("who is in paris ?", CONTEXT), ("what is the weather in paris ?", CONTEXT)]}
    shapes = []
    real = inference.infer_records

    def recording(backbone, head, batches, **kw):
        batches = list(batches)
        shapes.append([b["input_ids"].shape for b in batches])
        return real(backbone, head, batches, **kw)

    monkeypatch.setattr(inference, "infer_records", recording)
    for task, texts in inputs.items():
        reader = model.readers[task]
        reader = getattr(reader, "reader", reader)  # a label view shares its reader's settings
        split = model.predict(task, texts)
        reader.split_cost_tokens = None
        try:
            whole = model.predict(task, texts)
        finally:
            reader.split_cost_tokens = palm.PalmModel.split_cost_tokens
        assert len(split) == len(whole) == len(texts)
        for a, b in zip(split, whole):
            assert a.keys() == b.keys()
            for key in a:
                if key in ("logits", "probs", "start_logits", "end_logits", "score", "probability"):
                    np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-5)
                else:
                    assert a[key] == b[key], (task, key)
    # the 24 mixed-length classify texts (one batch of 32) ran as several shorter-padded sub-batches
    cls_split, cls_whole = shapes[0], shapes[1]
    assert len(cls_whole) == 1 and len(cls_split) > 1
    assert sum(r * w for r, w in cls_split) < sum(r * w for r, w in cls_whole)


def test_batches_stay_whole_on_gpu(monkeypatch, model):
    import paddle

    from paddlepalm.deploy.predictor import Predictor

    assert all(getattr(r, "reader", r).split_cost_tokens == 32 for r in model.readers.values())  # CPU here
    monkeypatch.setattr(paddle.device, "get_device", lambda: "gpu:0")
    on_gpu = palm.load(model.path)
    assert all(getattr(r, "reader", r).split_cost_tokens is None for r in on_gpu.readers.values())
    # ONNX Runtime sessions run on the CPU provider whatever device Paddle has
    ort = Predictor.__new__(Predictor)
    ort.backend = "onnxruntime"
    assert ort._runs_on_cpu()
    ort.backend = "dygraph"
    assert not ort._runs_on_cpu()
