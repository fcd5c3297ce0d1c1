"""An ERNIE 3.0 catalog entry end to end against a local server: PaddleNLP's bare .pdparams is
fetched, its config taken from PaddleNLP's published one, converted, loaded; its vocabulary is
the vocab item <name>-vocab."""
import io
import os

import numpy as np
import paddle
import pytest

from paddlepalm import downloader
from paddlepalm.backbone import ERNIE
from paddlepalm.backbone.paddlenlp_configs import known_config
from paddlepalm.downloader.catalog import load_catalog
from paddlepalm.errors import CheckpointError
from tests.test_downloader import FAST, server  # noqa: F401  (the local 127.0.0.1 server fixture)

NAME, STEM = "ernie-3.0-tiny-pico-v2-zh", "ernie_3.0_tiny_pico_v2"  # the smallest published one


def _pdparams_bytes(model) -> bytes:
    buffer = io.BytesIO()
    paddle.save({"ernie." + k: v for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()


def test_ernie3_entry_downloads_converts_and_loads(server, tmp_path):  # noqa: F811
    paddle.seed(0)
    original = ERNIE(known_config(STEM + ".pdparams"))
    assert not original.config.use_task_type  # the Tiny v2 series has no task-type embedding
    builtin = load_catalog(environ={})
    path = "/paddlenlp/models/transformers/ernie_3.0/"
    assert builtin.get("pretrain", NAME).url == "https://bj.bcebos.com" + path + STEM + ".pdparams"
    assert builtin.get("vocab", NAME + "-vocab").url == "https://bj.bcebos.com" + path + STEM + "_vocab.txt"
    words = ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]", "你", "好"]
    catalog = {"pretrain": [dict(name=NAME, format="paddlenlp", sha256=None,
                                 url=server.add(path + STEM + ".pdparams", _pdparams_bytes(original)))],
               "vocab": [dict(name=NAME + "-vocab", url=server.add(path + STEM + "_vocab.txt", "\n".join(words).encode()))]}
    installed = downloader.download("pretrain", NAME, str(tmp_path), catalog=catalog, **FAST)
    model = ERNIE.from_pretrained(installed, phase="predict")
    assert model.load_report.layout == "paddlepalm" and model.load_report.missing_keys == []
    assert model.config.to_dict() == original.config.to_dict()
    ids = paddle.to_tensor([[1, 5, 6, 2]])
    original.eval()
    np.testing.assert_array_equal(model(ids)[0].numpy(), original(ids)[0].numpy())
    vocab_dir = downloader.download("vocab", NAME + "-vocab", str(tmp_path), catalog=catalog, **FAST)
    from paddlepalm.reader import ClassifyReader

    reader = ClassifyReader(os.path.join(vocab_dir, STEM + "_vocab.txt"), 16)
    assert reader.tokenizer.encode("你好").ids == [1, 5, 6, 2]


def test_bare_pdparams_loads_with_the_published_config_and_unknown_names_are_refused(tmp_path):
    paddle.seed(0)
    model = ERNIE(known_config(STEM + ".pdparams"))
    paddle.save({"ernie." + k: v for k, v in model.state_dict().items()}, str(tmp_path / (STEM + ".pdparams")))
    loaded = ERNIE.from_pretrained(str(tmp_path))
    assert loaded.load_report.unused_keys == [] and loaded.load_report.missing_keys == []
    os.rename(tmp_path / (STEM + ".pdparams"), tmp_path / "mystery.pdparams")
    with pytest.raises(CheckpointError, match=r"missing file model_config\.json or config\.json \(and mystery\.pdparams"):
        ERNIE.from_pretrained(str(tmp_path))
