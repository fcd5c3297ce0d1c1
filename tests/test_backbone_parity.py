"""Canine, NEZHA and ERNIE 3.0 against Hugging Face transformers (golden fixtures made by
tests/golden/make_golden_backbones.py from random small configs), Canine's code points against
CanineTokenizer's, and the checkpoint errors of the new backbones."""
import json
import os
import shutil

import numpy as np
import paddle
import pytest

from paddlepalm.backbone import ERNIE, NEZHA, Canine, build_encoder, convert_checkpoint, read_checkpoint
from paddlepalm.errors import CheckpointError
from paddlepalm.tokenizer import CodepointTokenizer, Tokenizer
from tests.conftest import ROOT

FIXTURES = os.path.join(ROOT, "tests", "fixtures")
TOL = 1e-4


def golden(name):
    return np.load(os.path.join(FIXTURES, name))


def run(model, z, prefix="", **extra):
    names = ("input_ids", "token_type_ids", "attention_mask") + tuple(extra)
    inputs = {k: paddle.to_tensor(z[prefix + k]) for k in names if prefix + k in z.files}
    with paddle.no_grad():
        out = model(**inputs)
    return out[0].numpy(), out[1].numpy()


def assert_close(z, seq, pooled, prefix=""):
    mask = z[prefix + "attention_mask"].astype(bool) if prefix + "attention_mask" in z.files else \
        np.ones(seq.shape[:2], dtype=bool)
    assert np.abs(seq - z[prefix + "last_hidden_state"])[mask].max() <= TOL
    assert np.abs(pooled - z[prefix + "pooler_output"]).max() <= TOL


# ---------------------------------------------------------------------------------- Canine
def test_canine_matches_huggingface_on_mixed_scripts():
    z = golden("tiny_canine_golden.npz")
    texts = json.loads(str(z["texts_json"]))
    assert any("\u4e00" <= c <= "\u9fff" for c in texts[1]) and any("\u0600" <= c <= "\u06ff" for c in texts[2])
    assert any(ord(c) > 0xFFFF for c in texts[3])  # emoji: astral code points, one id each
    assert z["input_ids"].shape[1] % 4 != 0  # not a multiple of the downsampling rate
    model = Canine.from_pretrained(os.path.join(FIXTURES, "tiny_canine_hf"), phase="predict")
    assert model.load_report.unused_keys == [] and model.load_report.missing_keys == []
    seq, pooled = run(model, z)
    assert_close(z, seq, pooled)
    # also on the padded rows: an all-padding block of characters attends uniformly, as in HF
    assert np.abs(seq - z["last_hidden_state"])[z["attention_mask"].astype(bool)].max() < 1e-5
    assert_close(z, *run(model, z, "pair_"), prefix="pair_")


def test_canine_code_points_equal_canine_tokenizer():
    with open(os.path.join(FIXTURES, "canine_codepoints.json"), encoding="utf-8") as f:
        reference = json.load(f)
    tok = CodepointTokenizer()
    for sample in reference["samples"]:
        assert tok.encode(sample["text"]).ids == sample["ids"], sample["text"]
    for pair in reference["pairs"]:
        enc = tok.encode(pair["text"], pair["text_pair"])
        assert (enc.ids, enc.type_ids) == (pair["ids"], pair["token_type_ids"])
    z = golden("tiny_canine_golden.npz")
    for text, row, mask in zip(json.loads(str(z["texts_json"])), z["input_ids"], z["attention_mask"]):
        assert tok.encode(text).ids == row[mask.astype(bool)].tolist()


def test_canine_offsets_are_exact_characters():
    tok = CodepointTokenizer()
    text = "Zürich 北京 👍🏽!"
    enc = tok.encode(text)
    assert [text[a:b] for a, b in enc.offsets[1:-1]] == list(text)
    assert tok.decode(enc.ids) == text
    assert enc.ids[0] == 0xE000 and enc.ids[-1] == 0xE001


def test_canine_checkpoint_round_trips_and_the_tokenizer_follows(tmp_path):
    src = os.path.join(FIXTURES, "tiny_canine_hf")
    dst = convert_checkpoint(src, str(tmp_path / "native"))
    a = Canine.from_pretrained(src, phase="predict")
    b = Canine.from_pretrained(dst, phase="predict")
    assert b.load_report.layout == "paddlepalm" and isinstance(build_encoder(dst), Canine)
    z = golden("tiny_canine_golden.npz")
    np.testing.assert_array_equal(run(a, z)[0], run(b, z)[0])
    assert isinstance(Tokenizer.from_pretrained(dst), CodepointTokenizer)
    assert isinstance(Tokenizer.from_pretrained(src), CodepointTokenizer)


def _canine_copy(tmp_path, **config_changes):
    dst = tmp_path / "canine"
    shutil.copytree(os.path.join(FIXTURES, "tiny_canine_hf"), dst)
    config = json.loads((dst / "config.json").read_text())
    config.update(config_changes)
    (dst / "config.json").write_text(json.dumps(config))
    return str(dst)


@pytest.mark.parametrize("changes, key, tensor", [
    ({"downsampling_rate": 2}, "downsampling_rate", "chars_to_molecules.conv.weight"),
    ({"upsampling_kernel_size": 3}, "upsampling_kernel_size", "projection.conv.weight"),
    ({"num_hash_functions": 8}, "num_hash_functions", "hash embedding tables"),
    ({"num_hash_buckets": 128}, "num_hash_buckets", "embeddings.hash_embeddings.0.weight"),
])
def test_canine_wrong_settings_name_file_and_key(tmp_path, changes, key, tensor):
    path = _canine_copy(tmp_path, **changes)
    with pytest.raises(CheckpointError) as info:
        Canine.from_pretrained(path)
    message = str(info.value)
    assert os.path.join(path, "config.json") in message and os.path.join(path, "model.safetensors") in message
    assert "'%s'" % key in message and tensor in message


def test_canine_impossible_hash_settings_name_key(tmp_path):
    path = _canine_copy(tmp_path, num_hash_functions=5)  # 32 is not divisible by 5
    with pytest.raises(CheckpointError, match=r"config\.json: key 'num_hash_functions'"):
        Canine.from_pretrained(path)
    path = _canine_copy(tmp_path / "b", num_hash_functions=32)
    with pytest.raises(CheckpointError, match="at most 16 hash functions"):
        Canine.from_pretrained(path)


def test_canine_local_attention_is_block_diagonal():
    """Changing a character only changes the character layer's outputs inside its own block."""
    paddle.seed(0)
    model = Canine(dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                        num_hash_functions=2, num_hash_buckets=64, local_transformer_stride=4,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0), phase="predict")
    ids = paddle.to_tensor([[0xE000] + [ord(c) for c in "abcdefghij"] + [0xE001]])
    changed = ids.numpy().copy()
    changed[0, 5] = ord("z")  # block 1 (positions 4..7)
    keep = paddle.ones([1, 12], dtype="float32")
    with paddle.no_grad():
        a = model._local_layer(model.embeddings(ids), keep).numpy()
        b = model._local_layer(model.embeddings(paddle.to_tensor(changed)), keep).numpy()
    moved = np.abs(a - b).max(axis=-1)[0] > 1e-6
    assert moved.tolist() == [False] * 4 + [True] * 4 + [False] * 4


def test_canine_hidden_states_and_batch_independence():
    model = Canine.from_pretrained(os.path.join(FIXTURES, "tiny_canine_hf"), phase="predict")
    z = golden("tiny_canine_golden.npz")
    ids = paddle.to_tensor(z["input_ids"][:1])  # the unpadded row
    out = model(ids, output_hidden_states=True)
    # embeddings, the local character layer, 2 deep layers (molecules), the final character layer
    assert [h.shape[1] for h in out.hidden_states] == [26, 26, 6, 6, 26]
    np.testing.assert_array_equal(out.hidden_states[-1].numpy(), out.sequence_output.numpy())
    np.testing.assert_allclose(out.sequence_output.numpy()[0], z["last_hidden_state"][0], atol=TOL)


def test_canine_refuses_masked_lm_and_short_rows():
    from paddlepalm.reader import MaskLMReader

    with pytest.raises(ValueError, match="masked LM is not supported"):
        MaskLMReader(None, tokenizer="codepoint")
    model = Canine(dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                        num_hash_functions=2, num_hash_buckets=64), phase="predict")
    with pytest.raises(ValueError, match="at least downsampling_rate=4 characters"):
        model(paddle.to_tensor([[0xE000, 0xE001]]))
    with pytest.raises(ValueError, match="70 characters per row but this Canine has 64 character positions"):
        model(paddle.to_tensor([[0xE000] + [97] * 68 + [0xE001]]))


# ---------------------------------------------------------------------------------- NEZHA
def test_nezha_matches_huggingface():
    z = golden("tiny_nezha_golden.npz")
    model = NEZHA.from_pretrained(os.path.join(FIXTURES, "tiny_nezha_hf"), phase="predict")
    assert model.config.relative_positions and model.config.max_relative_position == 5
    assert model.embeddings.position_embeddings is None  # no learned absolute positions
    assert model.load_report.unused_keys == [] and model.load_report.missing_keys == []
    assert_close(z, *run(model, z))


def test_nezha_relative_positions_are_clipped_and_computed():
    from paddlepalm.backbone.encoder import RelativePositions, relative_position_table
    from paddlepalm.backbone.config import EncoderConfig

    cfg = EncoderConfig(hidden_size=8, num_attention_heads=2, model_type="nezha", max_relative_position=2)
    table = RelativePositions(cfg)(6).numpy()
    reference = relative_position_table(5, 4)
    for i in range(6):
        for j in range(6):
            np.testing.assert_array_equal(table[i, j], reference[min(max(j - i, -2), 2) + 2])
    assert "relative_positions.table" not in build_encoder(cfg).state_dict()  # not a parameter


def test_bert_relative_key_configs_are_refused():
    with pytest.raises(CheckpointError, match="position_embedding_type.*relative_key"):
        build_encoder({"model_type": "bert", "hidden_size": 8, "num_attention_heads": 2,
                       "position_embedding_type": "relative_key"})


# ---------------------------------------------------------------------------------- ERNIE 3.0
def test_ernie_hf_with_task_types_matches_huggingface():
    z = golden("tiny_ernie_golden.npz")
    model = ERNIE.from_pretrained(os.path.join(FIXTURES, "tiny_ernie_hf"), phase="predict")
    assert model.config.use_task_type and model.config.task_type_vocab_size == 3
    assert model.load_report.unused_keys == [] and model.load_report.missing_keys == []
    seq, pooled = run(model, z, task_type_ids=None)
    assert_close(z, seq, pooled)
    assert np.abs(seq - z["last_hidden_state"])[z["attention_mask"].astype(bool)].max() < 2e-6


PADDLENLP_ERNIE3_CONFIG = {  # the keys of PaddleNLP's ERNIE 3.0 model_config.json
    "init_args": [{"attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
                   "hidden_size": 32, "initializer_range": 0.02, "max_position_embeddings": 64,
                   "num_attention_heads": 4, "num_hidden_layers": 2, "task_type_vocab_size": 3,
                   "type_vocab_size": 4, "use_task_id": True, "vocab_size": 100, "pad_token_id": 0,
                   "intermediate_size": 64, "init_class": "ErnieModel"}],
    "init_class": "ErnieModel"}


def _paddlenlp_names(model):
    """PaddleNLP's ErnieModel parameter names (``ernie.`` + Paddle transformer naming)."""
    return {"ernie." + k: v.numpy() for k, v in model.state_dict().items()}


def test_paddlenlp_ernie3_state_dict_loads_without_unused_or_missing_keys(tmp_path):
    hf = ERNIE.from_pretrained(os.path.join(FIXTURES, "tiny_ernie_hf"), phase="predict")
    state = _paddlenlp_names(hf)
    assert {"ernie.embeddings.task_type_embeddings.weight", "ernie.encoder.layers.1.self_attn.q_proj.weight",
            "ernie.encoder.layers.0.linear1.weight", "ernie.encoder.layers.0.norm2.bias",
            "ernie.pooler.dense.weight"} <= set(state)
    paddle.save({k: paddle.to_tensor(v) for k, v in state.items()}, str(tmp_path / "model_state.pdparams"))
    (tmp_path / "model_config.json").write_text(json.dumps(PADDLENLP_ERNIE3_CONFIG))
    model = ERNIE.from_pretrained(str(tmp_path), phase="predict")
    assert model.load_report.layout == "paddlenlp"
    assert model.load_report.unused_keys == [] and model.load_report.missing_keys == []
    z = golden("tiny_ernie_golden.npz")
    assert_close(z, *run(model, z, task_type_ids=None))
    # the newer PaddleNLP config.json spelling reads the same
    flat = dict(PADDLENLP_ERNIE3_CONFIG["init_args"][0], architectures=["ErnieModel"], model_type="ernie",
                fuse=False, enable_recompute=False, pool_act="tanh", paddlenlp_version="2.6.0", dtype="float32")
    flat.pop("init_class")
    os.remove(tmp_path / "model_config.json")
    (tmp_path / "config.json").write_text(json.dumps(flat))
    config, _, report = read_checkpoint(str(tmp_path))
    assert config.use_task_type and config.task_type_vocab_size == 3 and report.unused_keys == []


def test_ernie_task_ids_out_of_range_name_file_and_key(tmp_path):
    model = ERNIE.from_pretrained(os.path.join(FIXTURES, "tiny_ernie_hf"), phase="predict")
    ids = paddle.to_tensor([[5, 6, 7]])
    with pytest.raises(ValueError) as info:
        model(ids, task_type_ids=paddle.to_tensor([[0, 1, 3]]))
    message = str(info.value)
    assert os.path.join(FIXTURES, "tiny_ernie_hf", "config.json") in message
    assert "'task_type_vocab_size' is 3" in message and "task id 3" in message
    with pytest.raises(ValueError, match="task id -1"):
        model(ids, task_type_ids=paddle.to_tensor([[0, -1, 0]]))
    # a checkpoint whose task-type table disagrees with its config: file and key named
    dst = tmp_path / "bad"
    shutil.copytree(os.path.join(FIXTURES, "tiny_ernie_hf"), dst)
    config = json.loads((dst / "config.json").read_text())
    config["task_type_vocab_size"] = 16
    (dst / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: key 'embeddings\.task_type_embeddings\.weight'"):
        ERNIE.from_pretrained(str(dst))


# ---------------------------------------------------------------------------------- catalog
def test_catalog_lists_the_ernie3_family_minilm_and_canine():
    from paddlepalm.downloader.catalog import load_catalog

    catalog = load_catalog(environ={})
    names = {e.name: e for e in catalog.entries("pretrain")}
    for size in ("xbase", "base", "medium", "mini", "micro", "nano"):
        entry = names["ernie-3.0-%s-zh" % size]
        assert entry.format == "paddlenlp" and entry.model == "ernie"
        assert entry.url == "https://bj.bcebos.com/paddlenlp/models/transformers/ernie_3.0/ernie_3.0_%s_zh.pdparams" % size
    for size in ("base", "medium", "mini", "micro", "nano", "pico"):
        entry = names["ernie-3.0-tiny-%s-v2-zh" % size]
        assert entry.url.endswith("/ernie_3.0/ernie_3.0_tiny_%s_v2.pdparams" % size) and entry.format == "paddlenlp"
    minilm = names["all-MiniLM-L6-v2"]
    assert minilm.hf_repo == "sentence-transformers/all-MiniLM-L6-v2" and minilm.format == "hf"
    # the files it names are the ones the offline copy of the same model carries
    from tests.helpers import minilm_dir

    required = [f.name for f in minilm.files if not f.optional]
    assert all(os.path.isfile(os.path.join(minilm_dir(), name)) for name in required)
    assert names["canine-s"].model == names["canine-c"].model == "canine"
