import json
import os

import numpy as np
import paddle
import pytest

import paddlepalm as palm
from paddlepalm.backbone import EncoderConfig, build_encoder, convert_checkpoint, detect_layout
from paddlepalm.errors import CheckpointError
from tests.helpers import make_tiny_checkpoint, minilm_dir, tiny_config, tiny_model

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def _run(model, ids, types=None, mask=None, **kw):
    t = lambda a: None if a is None else paddle.to_tensor(np.asarray(a, dtype="int64"))
    with paddle.no_grad():
        return model(t(ids), t(types), t(mask), **kw)


IDS = np.array([[2, 10, 11, 12, 13, 3, 0], [2, 14, 15, 3, 16, 17, 3]])
MASK = (IDS != 0).astype("int64")
TYPES = np.array([[0] * 7, [0, 0, 0, 0, 1, 1, 1]])


def test_minilm_matches_huggingface_bert():
    golden = np.load(os.path.join(FIXTURES, "minilm_golden.npz"))
    model = palm.backbone.BERT.from_pretrained(minilm_dir(), phase="predict")
    assert model.load_report.layout == "hf"
    assert model.load_report.missing_keys == [] and model.load_report.unused_keys == []
    assert golden["input_ids"].shape[0] >= 5
    out = _run(model, golden["input_ids"], golden["token_type_ids"], golden["attention_mask"])
    mask = golden["attention_mask"][..., None].astype(bool)
    seq_diff = np.abs(out[0].numpy() - golden["last_hidden_state"]) * mask
    assert seq_diff.max() <= 1e-4
    assert np.abs(out[1].numpy() - golden["pooler_output"]).max() <= 1e-4
    out = _run(model, golden["pair_input_ids"], golden["pair_token_type_ids"],
               golden["pair_attention_mask"])
    mask = golden["pair_attention_mask"][..., None].astype(bool)
    assert (np.abs(out.sequence_output.numpy() - golden["pair_last_hidden_state"]) * mask).max() <= 1e-4
    assert np.abs(out.pooled_output.numpy() - golden["pair_pooler_output"]).max() <= 1e-4


def test_tiny_roberta_matches_huggingface():
    golden = np.load(os.path.join(FIXTURES, "tiny_roberta_golden.npz"))
    model = palm.backbone.RoBERTa.from_pretrained(os.path.join(FIXTURES, "tiny_roberta_hf"),
                                                  phase="predict")
    assert model.config.model_type == "roberta" and model.config.position_offset == 2
    out = _run(model, golden["input_ids"], None, golden["attention_mask"])
    mask = golden["attention_mask"][..., None].astype(bool)
    assert (np.abs(out[0].numpy() - golden["last_hidden_state"]) * mask).max() <= 1e-4
    assert np.abs(out[1].numpy() - golden["pooler_output"]).max() <= 1e-4


@pytest.mark.parametrize("model_type", ["bert", "ernie", "roberta"])
@pytest.mark.parametrize("layout", ["paddlepalm", "paddlenlp", "hf"])
def test_layouts_round_trip(tmp_path, layout, model_type):
    model = tiny_model(model_type, seed=3)
    ckpt = make_tiny_checkpoint(str(tmp_path / layout), layout, model_type, model=model)
    assert detect_layout(ckpt) == layout
    loaded = palm.backbone.FAMILIES[model_type].from_pretrained(ckpt, phase="predict")
    assert loaded.config.model_type == model_type
    assert loaded.load_report.missing_keys == [] and loaded.load_report.unused_keys == []
    types = None if model_type == "roberta" else TYPES
    ref, got = _run(model, IDS, types, MASK), _run(loaded, IDS, types, MASK)
    np.testing.assert_array_equal(ref[0].numpy(), got[0].numpy())
    np.testing.assert_array_equal(ref[1].numpy(), got[1].numpy())


def test_save_load_convert_cli(tmp_path):
    src = make_tiny_checkpoint(str(tmp_path / "nlp"), "paddlenlp", "ernie")
    from paddlepalm.cli import main

    assert main(["convert", src, str(tmp_path / "palm")]) == 0
    assert detect_layout(str(tmp_path / "palm")) == "paddlepalm"
    assert os.path.isfile(tmp_path / "palm" / "vocab.txt")
    a = palm.backbone.ERNIE.from_pretrained(src, phase="predict")
    b = palm.backbone.ERNIE.from_pretrained(str(tmp_path / "palm"), phase="predict")
    np.testing.assert_array_equal(_run(a, IDS, TYPES, MASK)[0].numpy(),
                                  _run(b, IDS, TYPES, MASK)[0].numpy())
    # save_pretrained -> from_pretrained gives identical outputs
    b.save_pretrained(str(tmp_path / "again"))
    c = palm.backbone.ERNIE.from_pretrained(str(tmp_path / "again"), phase="predict")
    np.testing.assert_array_equal(_run(b, IDS, TYPES, MASK)[1].numpy(),
                                  _run(c, IDS, TYPES, MASK)[1].numpy())


def test_unused_keys_are_reported_by_name(tmp_path, caplog):
    ckpt = make_tiny_checkpoint(str(tmp_path / "hf"), "hf", "bert")
    from safetensors.numpy import load_file, save_file

    state = load_file(os.path.join(ckpt, "model.safetensors"))
    state["cls.predictions.bias"] = np.zeros(5, "float32")
    save_file(state, os.path.join(ckpt, "model.safetensors"))
    model = palm.backbone.BERT.from_pretrained(ckpt)
    assert model.load_report.unused_keys == ["cls.predictions.bias"]
    assert "cls.predictions.bias" in caplog.text


def test_missing_pooler_warns_but_missing_layer_raises(tmp_path, caplog):
    ckpt = make_tiny_checkpoint(str(tmp_path / "hf"), "hf", "bert")
    from safetensors.numpy import load_file, save_file

    path = os.path.join(ckpt, "model.safetensors")
    state = {k: v for k, v in load_file(path).items() if not k.startswith("bert.pooler")}
    save_file(state, path)
    model = palm.backbone.BERT.from_pretrained(ckpt)
    assert model.load_report.missing_keys == ["pooler.dense.bias", "pooler.dense.weight"]
    assert "pooler.dense.weight" in caplog.text
    del state["bert.encoder.layer.1.output.dense.weight"]
    save_file(state, path)
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*encoder\.layers\.1\.linear2\.weight"):
        palm.backbone.BERT.from_pretrained(ckpt)
    assert palm.backbone.BERT.from_pretrained(ckpt, strict=False).load_report.missing_keys


def test_missing_file_is_named(tmp_path):
    ckpt = make_tiny_checkpoint(str(tmp_path / "palm"), "paddlepalm", "bert")
    os.remove(os.path.join(ckpt, "encoder.safetensors"))
    with pytest.raises(CheckpointError, match="missing file encoder.safetensors"):
        palm.backbone.BERT.from_pretrained(ckpt)
    ckpt = make_tiny_checkpoint(str(tmp_path / "nlp"), "paddlenlp", "bert")
    os.remove(os.path.join(ckpt, "model_config.json"))
    with pytest.raises(CheckpointError, match="missing file model_config.json or config.json"):
        palm.backbone.BERT.from_pretrained(ckpt)


def test_wrong_shape_names_file_and_key(tmp_path):
    ckpt = make_tiny_checkpoint(str(tmp_path / "nlp"), "paddlenlp", "bert")
    state = paddle.load(os.path.join(ckpt, "model_state.pdparams"))
    state["bert.encoder.layers.0.linear1.weight"] = paddle.zeros([32, 65])
    paddle.save(state, os.path.join(ckpt, "model_state.pdparams"))
    with pytest.raises(CheckpointError) as err:
        palm.backbone.BERT.from_pretrained(ckpt)
    msg = str(err.value)
    assert "model_state.pdparams" in msg and "encoder.layers.0.linear1.weight" in msg
    assert "[32, 65]" in msg and "[32, 64]" in msg


def test_unknown_model_type_and_layout(tmp_path):
    ckpt = make_tiny_checkpoint(str(tmp_path / "hf"), "hf", "bert")
    cfg = json.load(open(os.path.join(ckpt, "config.json")))
    cfg["model_type"] = "xlnet"
    json.dump(cfg, open(os.path.join(ckpt, "config.json"), "w"))
    with pytest.raises(CheckpointError, match=r"config\.json.*'model_type'.*xlnet"):
        palm.backbone.BERT.from_pretrained(ckpt)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "weights.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="unknown checkpoint layout.*weights.bin"):
        detect_layout(str(empty))


def test_bad_json_names_line(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text('{\n  "hidden_size": 32,\n  "num_hidden_layers": \n}')
    with pytest.raises(CheckpointError, match=r"cfg\.json: line 4"):
        palm.backbone.BERT.from_config(str(path))


def test_from_config_rejects_unknown_keys():
    with pytest.raises(CheckpointError, match="hiden_size"):
        palm.backbone.BERT.from_config({**tiny_config(), "hiden_size": 3})


def test_palm_positional_constructor_and_phase():
    ernie = palm.backbone.ERNIE(32, 2, 4, 90, 64, 4, 3, "relu", 0.1, 0.1, 0.02, phase="predict")
    cfg = ernie.config
    assert (cfg.hidden_size, cfg.type_vocab_size, cfg.task_type_vocab_size, cfg.hidden_act) == \
        (32, 4, 3, "relu")
    assert cfg.use_task_type and not ernie.training
    assert "task_type_ids" in ernie.inputs_attr
    bert = palm.backbone.BERT.from_config(tiny_config("bert"))
    assert bert.training and "task_type_ids" not in bert.inputs_attr


def test_hidden_states_attentions_and_padding():
    model = tiny_model("bert", seed=1)
    out = _run(model, IDS, TYPES, MASK, output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == 3 and len(out.attentions) == 2
    assert out.attentions[0].shape == [2, 4, 7, 7]
    np.testing.assert_allclose(out.attentions[1].numpy().sum(-1), 1.0, rtol=1e-5)
    assert out.attentions[0].numpy()[0, :, :, 6].max() < 1e-3  # padded key gets no attention
    # a padded row equals the same row without padding
    short = _run(model, IDS[:1, :6], TYPES[:1, :6], MASK[:1, :6])
    np.testing.assert_allclose(out[0].numpy()[0, :6], short[0].numpy()[0], atol=1e-5)
    np.testing.assert_allclose(out[1].numpy()[0], short[1].numpy()[0], atol=1e-5)


def test_ernie_task_type_embedding_changes_output():
    model = tiny_model("ernie", seed=2)
    task = np.ones_like(IDS)
    t = lambda a: paddle.to_tensor(a)
    with paddle.no_grad():
        a = model(t(IDS), t(TYPES), t(MASK))[1].numpy()
        b = model(t(IDS), t(TYPES), t(MASK), task_type_ids=t(task))[1].numpy()
    assert np.abs(a - b).max() > 1e-4


def test_palm1_parameter_files_written_by_paddle_load(tmp_path):
    """PALM 1.x/2.x archives: per-variable files written by Paddle's static save op."""
    model = tiny_model("ernie", seed=4)
    ckpt = make_tiny_checkpoint(str(tmp_path / "palm1"), "palm1", "ernie", model=model)
    assert detect_layout(ckpt) == "palm1"
    loaded = palm.backbone.ERNIE.from_pretrained(ckpt, phase="predict")
    assert loaded.load_report.missing_keys == [] and loaded.load_report.unused_keys == []
    np.testing.assert_array_equal(_run(model, IDS, TYPES, MASK)[1].numpy(), _run(loaded, IDS, TYPES, MASK)[1].numpy())
    broken = tmp_path / "palm1" / "params" / "pooled_fc.w_0"
    broken.write_bytes(broken.read_bytes()[:-8])
    with pytest.raises(CheckpointError, match=r"pooled_fc\.w_0: not a Paddle parameter file"):
        palm.backbone.ERNIE.from_pretrained(ckpt)
