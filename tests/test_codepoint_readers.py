"""Every reader on Canine's code points: classification, matching pairs, sequence labelling (tags
on each word's first character), MRC (character offsets exact); masked LM refused."""
import json

import paddle
import pytest

import paddlepalm as palm
from paddlepalm.tokenizer import CodepointTokenizer
from paddlepalm.tokenizer.codepoint import CLS, SEP
from tests.helpers import write_file

CANINE = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
              num_hash_functions=2, num_hash_buckets=128, local_transformer_stride=8, type_vocab_size=2,
              hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def test_classify_reader_gives_code_points(tmp_path):
    path = write_file(tmp_path / "c.tsv", "label\ttext_a\n0\tsalut 🙂\n1\t你好\n")
    reader = palm.reader.ClassifyReader(None, 16, tokenizer="codepoint").load_data(path, 2)
    assert reader.features[0]["input_ids"] == [CLS] + [ord(c) for c in "salut 🙂"] + [SEP]
    assert reader.features[1]["input_ids"] == [CLS, ord("你"), ord("好"), SEP]
    # truncation counts characters
    short = palm.reader.ClassifyReader(None, 5, tokenizer="codepoint").load_data(path, 2)
    assert short.features[0]["input_ids"] == [CLS] + [ord(c) for c in "sal"] + [SEP]


def test_match_reader_pairs_get_token_types(tmp_path):
    path = write_file(tmp_path / "m.tsv", "label\ttext_a\ttext_b\n1\tab\tcde\n")
    f = palm.reader.MatchReader(None, 32, tokenizer="codepoint").load_data(path, 1).features[0]
    assert f["input_ids"] == [CLS, 97, 98, SEP, 99, 100, 101, SEP]
    assert f["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1, 1]


def test_sequence_label_tags_sit_on_each_words_first_character(tmp_path):
    path = write_file(tmp_path / "s.tsv", "text_a\tlabel\nplay\x02jazz\x02北\x02京\tO\x02B-g\x02B-c\x02I-c\n")
    reader = palm.reader.SequenceLabelReader(None, 64, tokenizer="codepoint").load_data(path, 1)
    f = reader.features[0]
    text = "".join(chr(i) for i in f["input_ids"][1:-1])
    assert text == "play jazz 北京"  # words joined by a space, none between two Chinese characters
    assert [text[p - 1] for p in f["word_starts"]] == ["p", "j", "北", "京"]
    assert f["word_labels"] == [reader.label_map.id_of(t) for t in ["O", "B-g", "B-c", "I-c"]]


def test_mrc_offsets_are_exact_characters(tmp_path):
    context = "Canine 读 characters: 北京是中国的首都。"
    start = context.index("北京")
    squad = {"data": [{"paragraphs": [{"context": context, "qas": [
        {"id": "q1", "question": "首都?", "answers": [{"text": "北京", "answer_start": start}]}]}]}]}
    path = write_file(tmp_path / "q.json", json.dumps(squad, ensure_ascii=False))
    reader = palm.reader.MRCReader(None, 24, max_query_len=8, doc_stride=6, tokenizer="codepoint").load_data(path, 4)
    assert len(reader.features) > 1  # several windows
    for f in reader.features:
        ids = f["input_ids"][f["context_start"]:f["context_end"]]
        assert [context[a:b] for a, b in f["token_offsets"]] == [chr(i) for i in ids]
        if f["start_positions"]:
            s, e = f["start_positions"], f["end_positions"]
            assert "".join(chr(i) for i in f["input_ids"][s:e + 1]) == "北京"


def test_mrc_trains_a_step_on_canine(tmp_path):
    context = "paddlepalm reads 北京 and Zürich."
    squad = {"data": [{"paragraphs": [{"context": context, "qas": [
        {"id": "q%d" % k, "question": q, "answers": [{"text": a, "answer_start": context.index(a)}]}
        for k, (q, a) in enumerate([("where?", "北京"), ("which city?", "Zürich")])]}]}]}
    path = write_file(tmp_path / "q.json", json.dumps(squad, ensure_ascii=False))
    paddle.seed(0)
    reader = palm.reader.MRCReader(None, 64, max_query_len=16, tokenizer="codepoint", seed=0).load_data(path, 2)
    trainer = palm.Trainer("qa", reader=reader, head=palm.head.MRC(16, input_dim=16))
    engine = palm.MultiHeadTrainer([trainer], backbone=palm.backbone.Canine(dict(CANINE)), seed=0)
    engine.fit(palm.optimizer.AdamW(lr=1e-3), num_epochs=1, print_steps=0)
    assert engine.global_step == 1


def test_readers_rebuild_the_codepoint_tokenizer_from_a_canine_checkpoint(tmp_path):
    model = palm.backbone.Canine(dict(CANINE))
    path = model.save_pretrained(str(tmp_path / "canine"), tokenizer=CodepointTokenizer())
    reader = palm.reader.ClassifyReader(path, 16)
    assert isinstance(reader.tokenizer, CodepointTokenizer)
    written = CodepointTokenizer().save(str(tmp_path / "tok"))
    assert json.load(open(written[0]))["tokenizer_class"] == "CanineTokenizer"
    assert isinstance(palm.reader.ClassifyReader(str(tmp_path / "tok"), 16).tokenizer, CodepointTokenizer)


def test_mask_lm_reader_refuses_code_points():
    with pytest.raises(ValueError, match="no output vocabulary"):
        palm.reader.MaskLMReader(None, tokenizer="codepoint")


def test_yaml_check_accepts_an_inline_canine_config_and_names_bad_keys(tmp_path, capsys):
    import yaml

    from paddlepalm.cli import main

    write_file(tmp_path / "train.tsv", "label\ttext_a\n0\tsalut\n1\t你好\n")
    config = {"backbone": {"type": "canine", "config": dict(CANINE)}, "tokenizer": {"type": "codepoint"},
              "tasks": {"t": {"reader": "classify", "train": "train.tsv"}}, "max_len": 16,
              "output_dir": str(tmp_path / "out")}
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump(config))
    assert main(["check", str(tmp_path / "ok.yaml")]) == 0
    config["backbone"]["config"]["num_hash_functions"] = 3  # 16 is not divisible by 3
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    capsys.readouterr()
    assert main(["check", str(tmp_path / "bad.yaml")]) == 1
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "backbone.config" in err and "num_hash_functions" in err
