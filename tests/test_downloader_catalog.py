"""The catalog: built-in entries, user overrides, validation errors and ``ls``."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from paddlepalm import downloader
from paddlepalm.downloader import CatalogError, UnknownItemError, load_catalog
from paddlepalm.errors import PalmError

PALM_NAMES = [
    "RoBERTa-zh-base", "RoBERTa-zh-large", "ERNIE-v2-en-base", "ERNIE-v2-en-large",
    "ERNIE-v1-zh-base", "ERNIE-v1-zh-base-max-len-512",
    "BERT-en-uncased-large-whole-word-masking", "BERT-en-cased-large-whole-word-masking",
    "BERT-en-uncased-base", "BERT-en-uncased-large", "BERT-en-cased-base", "BERT-en-cased-large",
    "BERT-multilingual-uncased-base", "BERT-multilingual-cased-base", "BERT-zh-base",
]


@pytest.fixture(autouse=True)
def _no_user_catalog(monkeypatch):
    monkeypatch.delenv(downloader.ENV_VAR, raising=False)


def _write(path, text):
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def test_builtin_catalog_keeps_palm_names_and_urls():
    cat = load_catalog()
    names = [e.name for e in cat.entries("pretrain")]
    assert set(PALM_NAMES) <= set(names)
    assert "RoBERTa-en-base" in names
    assert not any("xlnet" in n.lower() for n in names)
    assert cat.get("pretrain", "ERNIE-v2-en-base").url == \
        "https://ernie.bj.bcebos.com/ERNIE_Base_en_stable-2.0.0.tar.gz"
    assert cat.get("pretrain", "BERT-zh-base").url == \
        "https://bert-models.bj.bcebos.com/chinese_L-12_H-768_A-12.tar.gz"
    roberta = cat.get("pretrain", "RoBERTa-en-base")
    assert roberta.hf_repo == "FacebookAI/roberta-base" and roberta.url is None
    assert {"config.json", "model.safetensors", "vocab.json", "merges.txt"} <= \
        {f.name for f in roberta.files}
    for entry in cat.entries("pretrain"):
        assert entry.format in ("palm1", "hf", "paddlenlp") and entry.layers and entry.hidden_size
        assert entry.sha256 is None or len(entry.sha256) == 64
    json.dumps([e.to_dict() for e in cat])  # plain data


def test_ls_prints_a_table_and_returns_entries(capsys):
    entries = downloader.ls("pretrain")
    out = capsys.readouterr().out
    assert [e.name for e in entries] == [e.name for e in load_catalog().entries("pretrain")]
    for name in PALM_NAMES + ["RoBERTa-en-base"]:
        assert name in out
    header = out.splitlines()[1]
    for column in ("name", "lang", "layers/hidden", "size", "format", "source", "sha256"):
        assert column in header
    assert "12 / 768" in out and "bert-models.bj.bcebos.com" in out and "unknown" in out


def test_ls_palm_signature_all_and_scope(capsys):
    assert len(downloader.ls()) == len(downloader.ls(item="all", scope="all")) > 0
    one = downloader.ls("pretrain", "BERT-zh-base")
    assert [e.name for e in one] == ["BERT-zh-base"]
    capsys.readouterr()
    assert downloader.ls("pretrain", verbose=False) and capsys.readouterr().out == ""
    with pytest.raises(UnknownItemError, match="did you mean 'BERT-zh-base'"):
        downloader.ls("pretrain", "BERT-zh-bsae")
    with pytest.raises(UnknownItemError, match="unknown item type 'backbone'"):
        downloader.ls("backbone")


USER_CATALOG = """\
    version: 1
    pretrain:
      - name: BERT-en-uncased-base
        url: [https://mirror.example.com/bert/uncased_L-12_H-768_A-12.tar.gz,
              https://mirror2.example.com/uncased_L-12_H-768_A-12.tar.gz]
        sha256: %s
        format: palm1
        lang: en
      - name: my-model
        url: https://mirror.example.com/my-model.tar.gz
        format: paddlepalm
        description: our own fine-tuned encoder
    vocab:
      - name: my-vocab
        url: https://mirror.example.com/vocab.txt
""" % ("ab" * 32)


def test_user_catalog_from_env_var_overrides_and_extends(tmp_path, monkeypatch):
    path = _write(tmp_path / "mine.yaml", USER_CATALOG)
    monkeypatch.setenv(downloader.ENV_VAR, path)
    cat = load_catalog()
    bert = cat.get("pretrain", "BERT-en-uncased-base")
    assert bert.url.startswith("https://mirror.example.com/") and len(bert.urls) == 2
    assert bert.sha256 == "ab" * 32 and bert.origin == path and bert.verified
    assert cat.get("pretrain", "my-model").format == "paddlepalm"
    assert cat.get("vocab", "my-vocab").format == "raw"
    assert cat.item_types() == ["pretrain", "vocab"]
    assert len(cat.entries("pretrain")) == len(load_catalog(environ={}).entries("pretrain")) + 1


def test_user_catalog_from_argument_path_list_and_mapping(tmp_path, capsys):
    path = _write(tmp_path / "mine.yaml", USER_CATALOG)
    names = [e.name for e in downloader.ls(catalog=path)]
    assert "my-model" in names and "my-vocab" in names
    assert "my-vocab" in capsys.readouterr().out
    extra = {"pretrain": [{"name": "other", "hf_repo": "someone/other", "format": "hf",
                           "files": ["config.json", {"name": "model.safetensors",
                                                     "sha256": "CD" * 32}]}]}
    cat = load_catalog([path, extra])
    other = cat.get("pretrain", "other")
    assert other.files[1].sha256 == "cd" * 32 and not other.verified
    assert other.source == "hf://someone/other@main"
    assert "my-model" in [e.name for e in cat.entries()]


@pytest.mark.parametrize("body, expected", [
    ("pretrain:\n  - name: bad\n    url: https://x.org/a.tgz\n    format: hf\n    sha: 00\n",
     ["line 2", "'bad'", "unknown field 'sha'"]),
    ("pretrain:\n  - name: nourl\n    format: hf\n",
     ["'nourl'", "exactly one of 'url' or 'hf_repo'"]),
    ("pretrain:\n  - name: x\n    url: https://x.org/a.tgz\n    sha256: 1234\n    format: hf\n",
     ["'x'", "64 hex digits"]),
    ("pretrain:\n  - name: x\n    url: https://x.org/a.tgz\n    format: onnx\n",
     ["'x'", "'format' must be one of"]),
    ("pretrain:\n  - name: x\n    url: ftp://x.org/a.tgz\n    format: hf\n",
     ["'x'", "http(s) URL"]),
    ("pretrain:\n  - name: ../escape\n    url: https://x.org/a.tgz\n    format: hf\n",
     ["'name' must be"]),
    ("pretrain:\n  - name: x\n    url: https://x.org/a.tgz\n    format: hf\n"
     "  - name: x\n    url: https://x.org/b.tgz\n    format: hf\n",
     ["entry #2", "duplicate name 'x'"]),
    ("pretrain:\n  - name: x\n    hf_repo: a/b\n    files: [../secret]\n    format: hf\n",
     ["bad file name '../secret'"]),
    ("pretrain:\n  - name: x\n    url: https://x.org/a.tgz\n    format: hf\n    layers: -1\n",
     ["'layers' must be a positive integer"]),
    ("models:\n  - name: x\n", ["unknown top-level key 'models'"]),
    ("pretrain: {name: x}\n", ["line 1", "'pretrain' must be a list"]),
    ("- just\n- a list\n", ["a catalog must be a mapping"]),
    ("pretrain: [\n", ["is not valid YAML"]),
])
def test_malformed_user_catalog_names_file_and_entry(tmp_path, monkeypatch, body, expected):
    path = _write(tmp_path / "broken.yaml", body)
    monkeypatch.setenv(downloader.ENV_VAR, path)
    with pytest.raises(CatalogError) as err:
        load_catalog()
    assert isinstance(err.value, PalmError)
    message = str(err.value)
    assert path in message
    for part in expected:
        assert part in message


def test_missing_user_catalog_file_is_named(tmp_path, monkeypatch):
    missing = str(tmp_path / "nope.yaml")
    monkeypatch.setenv(downloader.ENV_VAR, missing)
    with pytest.raises(CatalogError, match="nope.yaml.*PADDLEPALM_CATALOG.*does not exist"):
        load_catalog()


def test_import_does_not_import_paddle_or_touch_the_network():
    code = ("import sys, socket\n"
            "def refuse(*a, **k): raise AssertionError('network used at import')\n"
            "socket.socket.connect = refuse\n"
            "from paddlepalm import downloader\n"
            "downloader.ls(verbose=False)\n"
            "assert 'paddle' not in sys.modules, 'paddle imported'\n"
            "assert 'paddlepalm.backbone' not in sys.modules\n"
            "print('ok')\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
