"""The encoder's ``first_token_only`` (last layer computes [CLS] alone) and who gets to ask for it."""
import numpy as np
import paddle
import pytest

import paddlepalm as palm
from paddlepalm.forward import head_encoder_options, run_task
from tests.helpers import tiny_model

IDS = np.array([[2, 10, 11, 12, 13, 3, 0, 0], [2, 14, 15, 3, 16, 17, 18, 3]], dtype="int64")
MASK = (IDS != 0).astype("int64")
TYPES = np.array([[0] * 8, [0, 0, 0, 0, 1, 1, 1, 1]], dtype="int64")


def _encode(model, **kw):
    types = paddle.to_tensor(TYPES) if model.config.type_vocab_size > 1 else None
    with paddle.no_grad():
        return model(paddle.to_tensor(IDS), types, paddle.to_tensor(MASK), **kw)


@pytest.mark.parametrize("model_type,overrides", [
    ("bert", {}), ("roberta", {}), ("ernie", {}),
    ("nezha", {"relative_positions": True, "max_relative_position": 3}),
    ("bert", {"num_hidden_layers": 1}),
])
def test_cls_row_and_pooled_output_equal_the_full_pass(model_type, overrides):
    model = tiny_model(model_type, **overrides)
    full = _encode(model, output_hidden_states=True)
    narrow = _encode(model, output_hidden_states=True, first_token_only=True)
    layers = model.config.num_hidden_layers
    assert full.sequence_output.shape == [2, 8, 32]
    assert narrow.sequence_output.shape == [2, 1, 32]
    np.testing.assert_allclose(narrow.sequence_output.numpy()[:, 0], full.sequence_output.numpy()[:, 0],
                               rtol=0, atol=1e-5)
    np.testing.assert_allclose(narrow.pooled_output.numpy(), full.pooled_output.numpy(), rtol=0, atol=1e-5)
    # every layer but the last is untouched; the last keeps [CLS] only
    assert len(narrow.hidden_states) == layers + 1 and narrow.hidden_states[-1].shape == [2, 1, 32]
    for a, b in zip(narrow.hidden_states[:-1], full.hidden_states[:-1]):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # the narrowed pass is not the full pass cut afterwards only by accident: the other rows differ
    assert not np.allclose(full.sequence_output.numpy()[:, 1], full.sequence_output.numpy()[:, 0], atol=1e-3)


def test_attentions_turn_it_off():
    model = tiny_model()
    out = _encode(model, output_attentions=True, first_token_only=True)
    assert out.sequence_output.shape == [2, 8, 32]
    assert all(a.shape == [2, 4, 8, 8] for a in out.attentions)


def _heads():
    classify = palm.head.Classify(3, 32, phase="predict")
    mean = palm.head.Classify(3, 32, phase="predict", representation="mean_tokens")
    layers = palm.head.Classify(3, 32, phase="predict", representation="max_layers", last_layers=2)
    labels = palm.head.SequenceLabel(5, 32, 0.0)
    for h in (classify, mean, layers, labels):
        h.eval()
    return classify, mean, layers, labels


def test_only_when_every_head_reads_cls():
    model = tiny_model()
    classify, mean, layers, labels = _heads()
    assert head_encoder_options([classify], backbone=model) == {"first_token_only": True}
    assert head_encoder_options([layers], backbone=model) == {"output_hidden_states": True, "first_token_only": True}
    assert head_encoder_options([mean], backbone=model) == {}
    assert head_encoder_options([classify, labels], backbone=model) == {}  # one encoder pass, two heads
    assert head_encoder_options([classify], {"first_token_only": False}, model) == {}  # a caller said no
    assert head_encoder_options([classify]) == {}  # no backbone that declares it
    assert head_encoder_options([classify], backbone=palm.backbone.Canine.from_config(
        {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4, "intermediate_size": 64,
         "downsampling_rate": 2, "num_hash_functions": 2, "num_hash_buckets": 64,
         "max_position_embeddings": 64, "local_transformer_stride": 4}, phase="predict")) == {}
    # a distiller that reads the student's hidden states needs every position
    assert head_encoder_options([classify], {"output_hidden_states": True}, model) == {"output_hidden_states": True}
    classify.train()  # training too: the loss reads [CLS] only
    assert head_encoder_options([classify], backbone=model) == {"first_token_only": True}


@pytest.mark.parametrize("representation", ["pooled", "cls", "max_layers"])
def test_head_outputs_are_unchanged(representation):
    model = tiny_model()
    paddle.seed(3)
    head = palm.head.Classify(3, 32, phase="predict", representation=representation, last_layers=2)
    head.eval()
    batch = {"input_ids": paddle.to_tensor(IDS), "token_type_ids": paddle.to_tensor(TYPES),
             "attention_mask": paddle.to_tensor(MASK)}
    with paddle.no_grad():
        narrow = run_task(model, head, batch)["logits"].numpy()
        full = head(model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"],
                          output_hidden_states=representation == "max_layers"), batch)["logits"].numpy()
    np.testing.assert_allclose(narrow, full, rtol=0, atol=1e-5)


def test_training_gradients_equal_the_full_pass(monkeypatch):
    """Training a [CLS] head: the loss never reads the last layer's other rows, so skipping them
    leaves the loss and every encoder gradient unchanged (dropout off, float rounding aside)."""
    from paddlepalm.backbone.encoder import Encoder

    def grads(narrow: bool):
        monkeypatch.setattr(Encoder, "accepts_first_token_only", narrow)
        model = tiny_model(seed=5)
        model.train()
        paddle.seed(4)
        head = palm.head.Classify(3, 32, phase="train")
        batch = {"input_ids": paddle.to_tensor(IDS), "token_type_ids": paddle.to_tensor(TYPES),
                 "attention_mask": paddle.to_tensor(MASK), "label": paddle.to_tensor(np.array([[1], [2]]))}
        assert head_encoder_options([head], backbone=model) == ({"first_token_only": True} if narrow else {})
        loss = run_task(model, head, batch)["loss"]
        loss.backward()
        return float(loss), {n: p.grad.numpy() for n, p in model.named_parameters() if p.grad is not None}

    loss_narrow, narrow = grads(True)
    loss_full, full = grads(False)
    assert abs(loss_narrow - loss_full) < 1e-6
    assert sorted(narrow) == sorted(full) and len(full) > 20
    for name in full:
        np.testing.assert_allclose(narrow[name], full[name], rtol=0, atol=1e-5, err_msg=name)
