"""A tiny four-task model (classify, CRF sequence labelling, match, MRC) saved with ``trainer.save``,
shared by the deployment tests. Random init, one epoch at lr 0 (the weights stay random); the CRF
transitions are randomised so Viterbi decoding differs from a per-word argmax."""
import json
import os

import numpy as np

from tests.helpers import tiny_config, write_file, write_vocab

SEP = "\x02"
CLS_ROWS = [("0", "play jazz music"), ("1", "book a table for two"), ("2", "what is the weather in paris"),
            ("0", "play rock song by the stars"), ("1", "book the restaurant"), ("2", "will it rain tomorrow")]
SLOT_ROWS = [("play jazz music", "O B-genre O"), ("weather in paris tomorrow", "O O B-city B-date"),
             ("add jazz to my playlist", "O B-genre O O B-object"), ("book a table for two", "O O O O B-num")]
MATCH_ROWS = [("1", "play jazz", "play jazz music"), ("0", "play jazz", "book a table"),
              ("1", "weather in paris", "will it rain in paris"), ("0", "what movie", "add to my playlist")]
CONTEXT = "the weather in paris is sunny , and it will rain tomorrow ."
QA = [("q1", "what is the weather in paris ?", "sunny"), ("q2", "when will it rain ?", "tomorrow")]
CLS_TEXTS = [t for _, t in CLS_ROWS] + ["hello world", "play the song by the rock stars in paris tomorrow"]
SLOT_TEXTS = [w for w, _ in SLOT_ROWS] + ["play rock music in paris", "the weather"]
MATCH_PAIRS = [(a, b) for _, a, b in MATCH_ROWS]
QUESTIONS = [(q, CONTEXT) for _, q, _ in QA] + [("who is in paris ?", CONTEXT)]


def build_model(root: str) -> str:
    """Train (at lr 0) and save the four-task model under ``root``; returns the model dir."""
    import paddle

    import paddlepalm as palm

    vocab = write_vocab(os.path.join(root, "vocab"))
    cls = write_file(os.path.join(root, "cls.tsv"), "label\ttext_a\n" + "".join("%s\t%s\n" % r for r in CLS_ROWS))
    slot = write_file(os.path.join(root, "slot.tsv"), "text_a\tlabel\n" + "".join(
        SEP.join(w.split()) + "\t" + SEP.join(t.split()) + "\n" for w, t in SLOT_ROWS))
    match = write_file(os.path.join(root, "match.tsv"), "label\ttext_a\ttext_b\n" + "".join(
        "%s\t%s\t%s\n" % r for r in MATCH_ROWS))
    squad = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": CONTEXT, "qas": [
        {"id": i, "question": q, "answers": [{"text": a, "answer_start": CONTEXT.index(a)}]} for i, q, a in QA]}]}]}
    qa = write_file(os.path.join(root, "qa.json"), json.dumps(squad))
    paddle.seed(0)
    backbone = palm.backbone.BERT.from_config(tiny_config("bert"))
    slot_reader = palm.reader.SequenceLabelReader(vocab, 24, seed=0).load_data(slot, 2)
    slot_head = palm.head.SequenceLabel(len(slot_reader.label_map.labels), 32, use_crf=True)
    tasks = [
        palm.Trainer("cls", reader=palm.reader.ClassifyReader(vocab, 24, seed=0).load_data(cls, 2),
                     head=palm.head.Classify(3, 32)),
        palm.Trainer("slot", reader=slot_reader, head=slot_head),
        palm.Trainer("match", reader=palm.reader.MatchReader(vocab, 24, seed=0).load_data(match, 2),
                     head=palm.head.Match(2, 32)),
        palm.Trainer("qa", reader=palm.reader.MRCReader(vocab, 40, 12, 16, seed=0).load_data(qa, 2),
                     head=palm.head.MRC(12, 32)),
    ]
    trainer = palm.MultiHeadTrainer(tasks, backbone=backbone)
    trainer.fit(num_epochs=1, print_steps=0, optimizer=palm.optimizer.AdamW(lr=0.0))
    rng = np.random.default_rng(0)
    crf = slot_head.crf
    for p in (crf.transitions, crf.start, crf.end):
        p.set_value(rng.normal(0, 1.0, p.shape).astype("float32"))
    return trainer.save(os.path.join(root, "model"))
