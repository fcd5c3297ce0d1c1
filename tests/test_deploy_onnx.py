"""ONNX export and the deployment Predictor: every backend answers like palm.load (tiny random model).

Needs the [onnx] extra (paddle2onnx, onnx, onnxruntime); .ci/run installs it.
"""
import json
import os
import threading

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="the [onnx] extra (onnxruntime) is not installed")
pytest.importorskip("paddle2onnx", reason="the [onnx] extra (paddle2onnx) is not installed")

import paddlepalm as palm  # noqa: E402
from tests.deploy_fixtures import CLS_TEXTS, MATCH_PAIRS, QUESTIONS, SLOT_TEXTS, build_model  # noqa: E402

INPUTS = {"cls": CLS_TEXTS, "slot": SLOT_TEXTS, "match": MATCH_PAIRS, "qa": QUESTIONS}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from paddlepalm.deploy import export

    root = str(tmp_path_factory.mktemp("deploy"))
    model_dir = build_model(root)
    logged = []
    export(model_dir, int8=True, dev_files={"cls": os.path.join(root, "cls.tsv")}, log=logged.append)
    return model_dir, palm.load(model_dir), logged


def test_export_writes_onnx_with_only_the_inputs_the_graph_reads(exported):
    import onnx

    model_dir, _, logged = exported
    manifest = json.load(open(os.path.join(model_dir, "export", "paddlepalm_deploy.json")))
    assert sorted(manifest["tasks"]) == ["cls", "match", "qa", "slot"]
    # MiniLM-like BERT: no position_ids / task_type_ids; the CRF head reads word_starts (num_words
    # is only read by the numpy post-processing); MRC masks with the context span
    assert manifest["tasks"]["cls"]["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert set(manifest["tasks"]["slot"]["inputs"]) == {"input_ids", "attention_mask", "token_type_ids",
                                                        "word_starts"}
    assert set(manifest["tasks"]["qa"]["inputs"]) == {"input_ids", "attention_mask", "token_type_ids",
                                                      "context_start", "context_end"}
    graph = onnx.load(os.path.join(model_dir, "export", manifest["tasks"]["slot"]["onnx"]))
    onnx.checker.check_model(graph)
    for inp in graph.graph.input:  # batch and sequence axes are symbolic, not fixed numbers
        dims = inp.type.tensor_type.shape.dim
        assert all(not d.HasField("dim_value") for d in dims), (inp.name, dims)
    assert sorted(i.name for i in graph.graph.input) == sorted(manifest["tasks"]["slot"]["inputs"])
    ops = [n.op_type for n in graph.graph.node]  # lean: no branch per layer, no per-layer shape arithmetic
    assert "If" not in ops and ops.count("Shape") <= 2, {op: ops.count(op) for op in ("If", "Shape")}
    check = manifest["tasks"]["cls"]["int8_check"]
    assert set(check) == {"fp32", "int8", "dev_file"} and 0.0 <= check["int8"]["accuracy"] <= 1.0
    assert any("int8 vs fp32" in line and "accuracy" in line for line in logged)


@pytest.mark.parametrize("backend", ["onnxruntime", "inference"])
@pytest.mark.parametrize("task", ["cls", "match"])
def test_classifier_outputs_equal_dygraph(exported, backend, task):
    from paddlepalm.deploy import Predictor

    model_dir, model, _ = exported
    expected = model.predict(task, INPUTS[task])
    got = Predictor(model_dir, backend=backend, threads=1).predict(task, INPUTS[task])
    assert [r["label"] for r in got] == [r["label"] for r in expected]
    assert [r["index"] for r in got] == list(range(len(INPUTS[task])))
    np.testing.assert_allclose([r["logits"] for r in got], [r["logits"] for r in expected], atol=1e-4, rtol=0)
    np.testing.assert_allclose([r["probs"] for r in got], [r["probs"] for r in expected], atol=1e-4, rtol=0)


def test_raw_emissions_equal_dygraph_within_1e4(exported):
    from paddlepalm.deploy import Predictor
    from paddlepalm.engine.inference import infer_outputs

    model_dir, model, _ = exported
    predictor = Predictor(model_dir)
    for task in ("cls", "slot", "match", "qa"):
        reader = model.readers[task].clone("predict")
        reader.load_examples(reader.make_examples(INPUTS[task]), 8)
        for batch in reader.iterator(num_epochs=1):
            expected = infer_outputs(model.backbone, model.heads[task], batch)
            got = predictor.run(task, batch)
            assert sorted(got) == sorted(expected)
            for name in expected:
                assert got[name].shape == expected[name].shape
                np.testing.assert_allclose(got[name], expected[name], atol=1e-4, rtol=0, err_msg=task + "." + name)


def test_crf_tag_paths_identical_and_transitions_used(exported):
    from paddlepalm.deploy import Predictor

    model_dir, model, _ = exported
    expected = model.predict("slot", SLOT_TEXTS)
    got = Predictor(model_dir).predict("slot", SLOT_TEXTS)
    assert [r["labels"] for r in got] == [r["labels"] for r in expected]
    assert [r["words"] for r in got] == [t.split() for t in SLOT_TEXTS]
    # the saved (random) transitions matter: Viterbi differs from a per-word argmax somewhere
    reader = model.readers["slot"].clone("predict")
    reader.load_examples(reader.make_examples(SLOT_TEXTS), 8)
    batch = next(iter(reader.iterator(num_epochs=1)))
    logits = Predictor(model_dir).run("slot", batch)["logits"]
    argmax = [row[:n].argmax(-1).tolist() for row, n in zip(logits, batch["num_words"])]
    assert argmax != [r["label_ids"] for r in sorted(got, key=lambda r: r["index"])]


def test_mrc_nbest_identical(exported):
    from paddlepalm.deploy import Predictor

    model_dir, model, _ = exported
    expected = model.predict("qa", QUESTIONS)
    got = Predictor(model_dir).predict("qa", QUESTIONS)
    assert [a["text"] for a in got] == [a["text"] for a in expected]
    for a, b in zip(got, expected):
        assert [c["text"] for c in a["nbest"]] == [c["text"] for c in b["nbest"]]
        np.testing.assert_allclose([c["probability"] for c in a["nbest"]], [c["probability"] for c in b["nbest"]],
                                   atol=1e-4)


def test_int8_model_is_smaller_and_close(exported):
    from paddlepalm.deploy import Predictor

    model_dir, model, _ = exported
    import onnx

    folder = os.path.join(model_dir, "export", "cls")
    assert os.path.getsize(os.path.join(folder, "model.int8.onnx")) < os.path.getsize(
        os.path.join(folder, "model.onnx"))
    ops = [n.op_type for n in onnx.load(os.path.join(folder, "model.int8.onnx")).graph.node]
    assert ops.count("MatMulInteger") >= 12 and "DynamicQuantizeLinear" in ops  # 2 layers x 6 GEMMs
    got = Predictor(model_dir, precision="int8").predict("cls", CLS_TEXTS)
    expected = model.predict("cls", CLS_TEXTS)
    diff = np.abs(np.array([r["probs"] for r in got]) - np.array([r["probs"] for r in expected])).max()
    assert 0 < diff < 0.05  # quantized: not bit-equal, but close


def test_int8_weight_scales_per_tensor_by_default_or_per_channel(exported, tmp_path):
    import onnx
    from onnx import numpy_helper

    from paddlepalm.deploy.quantize import quantize_int8

    model_dir, _, _ = exported
    manifest = json.load(open(os.path.join(model_dir, "export", "paddlepalm_deploy.json")))
    assert {t["int8_weights"] for t in manifest["tasks"].values()} == {"per_tensor"}

    def weight_scale_sizes(path):
        m = onnx.load(path)
        inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
        # MatMulInteger(a, b, a_zero_point, b_zero_point): b's zero point has one entry per scale
        return [inits[n.input[3]].size for n in m.graph.node if n.op_type == "MatMulInteger"]

    src = os.path.join(model_dir, "export", "cls", "model.onnx")
    per_tensor = weight_scale_sizes(os.path.join(model_dir, "export", "cls", "model.int8.onnx"))
    per_channel = weight_scale_sizes(quantize_int8(src, str(tmp_path / "pc.onnx"), weights="per_channel"))
    assert per_tensor and set(per_tensor) == {1}
    assert len(per_channel) == len(per_tensor) and max(per_channel) > 1  # one scale per output column
    with pytest.raises(ValueError, match="per_tensor or per_channel"):
        quantize_int8(src, str(tmp_path / "x.onnx"), weights="per_row")
    from paddlepalm.deploy import export

    with pytest.raises(ValueError, match="per_tensor or per_channel"):  # refused before any work
        export(model_dir, out=str(tmp_path / "never"), int8=True, int8_weights="per_row")
    with pytest.raises(ValueError, match="zeroed or kept"):
        export(model_dir, out=str(tmp_path / "never"), int8=True, int8_padding="masked")
    assert not os.path.exists(tmp_path / "never")


def _with_padding(batch, extra):
    """``batch`` with ``extra`` more padding positions on every token-level input."""
    padded = dict(batch)
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        value = np.asarray(batch[name])
        padded[name] = np.concatenate([value, np.zeros((value.shape[0], extra), value.dtype)], axis=1)
    return padded


@pytest.mark.parametrize("task", ["slot", "cls"])
def test_int8_answers_do_not_depend_on_padding(exported, tmp_path, task):
    import onnx

    from paddlepalm.deploy.predictor import _OnnxRuntimeEngine, read_manifest
    from paddlepalm.deploy.quantize import ZERO_PADDING_PREFIX, quantize_int8

    model_dir, model, _ = exported
    export_dir = os.path.join(model_dir, "export")
    spec = dict(read_manifest(export_dir)["tasks"][task])
    layers = model.backbone.config.num_hidden_layers
    graph = onnx.load(os.path.join(export_dir, spec["onnx_int8"]))
    zeroed = [n for n in graph.graph.node if n.op_type == "Mul" and n.name.startswith(ZERO_PADDING_PREFIX)]
    # 4 quantized inputs a layer (q/k/v, attention output, FFN in and out); the [CLS]-only last
    # layer of a classifier keeps only its q/k/v input token-level; heads are not token-level
    assert len(zeroed) == (4 * layers if task == "slot" else 4 * (layers - 1) + 1)
    assert spec["int8_zeroed_padding_inputs"] == len(zeroed)  # the manifest says what was done
    quantize_int8(os.path.join(export_dir, spec["onnx"]), str(tmp_path / "kept.onnx"), zero_padding=False)
    engines = {}
    for name, file in (("zeroed", spec["onnx_int8"]), ("kept", str(tmp_path / "kept.onnx"))):
        engines[name] = _OnnxRuntimeEngine(export_dir, task, dict(spec, onnx_int8=file), "int8", 1)
    changed = 0.0
    for batch in _task_batches(model, task):
        for name, engine in engines.items():
            short, long = engine.run(batch), engine.run(_with_padding(batch, 9))
            for output in short:
                diff = np.abs(np.asarray(short[output]) - np.asarray(long[output])).max()
                if name == "zeroed":
                    assert diff < 1e-5, (task, output, diff)
                else:
                    changed = max(changed, diff)
    assert changed > 1e-4  # without the zeroing, padding moves the int8 outputs


def test_zero_padding_leaves_a_graph_without_a_known_mask_alone(exported, tmp_path):
    import onnx

    from paddlepalm.deploy.onnx_fusion import fuse_attention
    from paddlepalm.deploy.quantize import quantize_int8, zero_padding_rows

    model_dir, model, _ = exported
    src = os.path.join(model_dir, "export", "slot", "model.onnx")
    kept = onnx.load(quantize_int8(src, str(tmp_path / "kept.onnx"), zero_padding=False))
    nodes = len(kept.graph.node)
    unknown = onnx.load(src)
    fuse_attention(unknown)  # no Softmax blocks left: the padding mask cannot be found
    assert zero_padding_rows(kept, unknown) == 0 and len(kept.graph.node) == nodes
    layers = model.backbone.config.num_hidden_layers
    assert zero_padding_rows(kept, onnx.load(src)) == 4 * layers
    assert len(kept.graph.node) == nodes + 4 * layers + 2  # one Mul each, the mask's Cast and Unsqueeze
    assert zero_padding_rows(kept, onnx.load(src)) == 0 and len(kept.graph.node) == nodes + 4 * layers + 2  # once
    unsqueeze = [n for n in kept.graph.node if n.op_type == "Unsqueeze" and n.name.startswith("palm_zero")]
    assert len(unsqueeze) == 1 and len(unsqueeze[0].input) == 2  # opset 13: axes is an input
    old = onnx.load(str(tmp_path / "kept.onnx"))
    for opset in old.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = 12  # before opset 13, Unsqueeze takes axes as an attribute
    assert zero_padding_rows(old, onnx.load(src)) == 4 * layers
    unsqueeze = [n for n in old.graph.node if n.op_type == "Unsqueeze" and n.name.startswith("palm_zero")]
    assert len(unsqueeze[0].input) == 1 and [list(a.ints) for a in unsqueeze[0].attribute] == [[2]]


def test_onnxruntime_predictor_is_thread_safe(exported):
    from paddlepalm.deploy import Predictor

    model_dir, model, _ = exported
    predictor = Predictor(model_dir, threads=1)
    expected = {t: predictor.predict(t, INPUTS[t]) for t in ("cls", "slot")}
    results, errors = [], []

    def work(i):
        try:
            task = ("cls", "slot")[i % 2]
            for _ in range(3):
                results.append((task, predictor.predict(task, INPUTS[task])))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors and len(results) == 18
    for task, got in results:
        assert got == expected[task]


def test_bad_options_and_missing_export(exported, tmp_path):
    from paddlepalm.deploy import Predictor, export
    from paddlepalm.errors import CheckpointError

    model_dir, _, _ = exported
    with pytest.raises(ValueError, match="backend must be one of dygraph, inference, onnxruntime"):
        Predictor(model_dir, backend="tensorrt")
    with pytest.raises(ValueError, match="supports precision fp32, int8"):
        Predictor(model_dir, precision="bf16")
    with pytest.raises(CheckpointError, match="missing paddlepalm_deploy.json"):
        Predictor(model_dir, export_dir=str(tmp_path / "nothing"))
    with pytest.raises(ValueError, match="unknown task nope; this model has cls"):
        export(model_dir, out=str(tmp_path / "x"), tasks=["nope"])
    with pytest.raises(ValueError, match="unknown export format tflite"):
        export(model_dir, out=str(tmp_path / "x"), formats=["tflite"])
    with pytest.raises(FileNotFoundError, match="dev file for task 'cls' not found"):
        export(model_dir, out=str(tmp_path / "x"), int8=True, dev_files={"cls": str(tmp_path / "missing.tsv")})
    assert not os.path.exists(tmp_path / "x")


def test_dygraph_backend_is_palm_load(exported):
    from paddlepalm.deploy import Predictor

    model_dir, model, _ = exported
    assert Predictor(model_dir, backend="dygraph").predict("slot", SLOT_TEXTS) == model.predict("slot", SLOT_TEXTS)


def test_cli_export_onnx_and_errors(exported, tmp_path, capsys):
    from paddlepalm.cli import main

    model_dir, model, _ = exported
    out = str(tmp_path / "cli_export")
    assert main(["export", model_dir, "--format", "onnx", "--tasks", "cls", "--out", out]) == 0
    manifest = json.load(open(os.path.join(out, "paddlepalm_deploy.json")))
    assert list(manifest["tasks"]) == ["cls"] and os.path.isfile(os.path.join(out, "cls", "model.onnx"))
    assert "onnx_int8" not in manifest["tasks"]["cls"]
    assert main(["export", model_dir, "--out", str(tmp_path / "y"), "--dev", "cls"]) == 1
    assert "--dev 'cls': expected TASK=FILE" in capsys.readouterr().err
    assert main(["export", model_dir, "--out", str(tmp_path / "y"), "--dev", "cls=a.tsv"]) == 1
    assert "pass int8=True" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "y")
    kept = str(tmp_path / "kept")  # --int8-padding kept: no zeroing, and the manifest says so
    assert main(["export", model_dir, "--tasks", "slot", "--out", kept, "--int8", "--int8-padding", "kept"]) == 0
    assert json.load(open(os.path.join(kept, "paddlepalm_deploy.json")))["tasks"]["slot"][
        "int8_zeroed_padding_inputs"] == 0


def _task_batches(model, task):
    reader = model.readers[task].clone("predict")
    reader.load_examples(reader.make_examples(INPUTS[task]), 4)
    return list(reader.iterator(num_epochs=1))


def test_attention_fused_at_load_and_outputs_unchanged(exported):
    import onnx

    from paddlepalm.deploy import Predictor

    model_dir, model, _ = exported
    layers = model.backbone.config.num_hidden_layers
    fused, fused_int8 = Predictor(model_dir), Predictor(model_dir, precision="int8")
    plain = Predictor(model_dir, fuse_attention=False)
    plain_int8 = Predictor(model_dir, precision="int8", fuse_attention=False)
    for task in INPUTS:  # every block of every task's graph, fp32 and int8 ([CLS]-only last layer included)
        assert fused.engines[task].fused_attention_blocks == layers, task
        assert fused_int8.engines[task].fused_attention_blocks == layers, task
        assert plain.engines[task].fused_attention_blocks == 0
        for batch in _task_batches(model, task):
            for a, b in ((fused, plain), (fused_int8, plain_int8)):
                got, expected = a.run(task, batch), b.run(task, batch)
                for name in expected:
                    np.testing.assert_allclose(got[name], expected[name], atol=1e-5, rtol=0, err_msg=task + "." + name)
    manifest = json.load(open(os.path.join(model_dir, "export", "paddlepalm_deploy.json")))
    on_disk = onnx.load(os.path.join(model_dir, "export", manifest["tasks"]["cls"]["onnx"]))
    assert not [n for n in on_disk.graph.node if n.domain == "com.microsoft"]  # files stay standard ONNX


def test_fuse_attention_leaves_blocks_it_does_not_know(exported):
    import onnx
    from onnx import numpy_helper

    from paddlepalm.deploy.onnx_fusion import fuse_attention

    model_dir, model, _ = exported
    layers = model.backbone.config.num_hidden_layers
    path = os.path.join(model_dir, "export", "cls", "model.onnx")
    graph = onnx.load(path)
    assert fuse_attention(graph) == layers
    assert [n.op_type for n in graph.graph.node].count("MultiHeadAttention") == layers
    assert "Softmax" not in [n.op_type for n in graph.graph.node if n.output[0] != graph.graph.output[-1].name]

    # a mask that leaves weight on padding ((1 - m) * -1 instead of * -10000) is not a padding mask
    graph = onnx.load(path)
    filters = [i for i in graph.graph.initializer if numpy_helper.to_array(i).tolist() in ([-10000.0], -10000.0)]
    assert len(filters) == 1
    filters[0].CopyFrom(numpy_helper.from_array(np.array([-1.0], np.float32), filters[0].name))
    assert fuse_attention(graph) == 0 and "MultiHeadAttention" not in [n.op_type for n in graph.graph.node]

    # heads split with a computed size (-1) in one block: that block stays, the others are fused
    graph = onnx.load(path)
    reshape = next(n for n in graph.graph.node if n.op_type == "Reshape"
                   and numpy_helper.to_array(next(i for i in graph.graph.initializer if i.name == n.input[1])).size == 4)
    target = next(i for i in graph.graph.initializer if i.name == reshape.input[1])
    shape = numpy_helper.to_array(target).copy()
    shape[2] = -1
    renamed = numpy_helper.from_array(shape, target.name + "_minus_one")
    graph.graph.initializer.append(renamed)
    reshape.input[1] = renamed.name
    assert fuse_attention(graph) == layers - 1

    # a block whose attention weights are a graph output keeps them
    graph = onnx.load(path)
    softmax = next(n for n in graph.graph.node if n.op_type == "Softmax")
    graph.graph.output.append(onnx.helper.make_tensor_value_info(softmax.output[0], onnx.TensorProto.FLOAT, None))
    assert fuse_attention(graph) == layers - 1
    assert softmax.output[0] in {o for n in graph.graph.node for o in n.output}


@pytest.mark.parametrize("model_type,overrides", [
    ("roberta", {}), ("ernie", {}), ("nezha", {"relative_positions": True, "max_relative_position": 3}),
])
def test_attention_fusion_across_encoders(tmp_path, model_type, overrides):
    """BERT is covered above; RoBERTa and ERNIE blocks fuse, NEZHA's relative positions do not match (left alone)."""
    import onnx
    import onnxruntime as ort

    from paddlepalm.deploy.exporter import _to_onnx
    from paddlepalm.deploy.onnx_fusion import fuse_attention
    from paddlepalm.deploy.paddle_export import export_task
    from tests.helpers import tiny_model, write_vocab

    vocab = write_vocab(str(tmp_path / "vocab"))
    backbone = tiny_model(model_type, **overrides)
    reader = palm.reader.ClassifyReader(vocab, 24, seed=0, phase="predict")
    head = palm.head.Classify(3, 32, phase="predict")
    info = export_task(backbone, head, reader, str(tmp_path / "task"))
    path = _to_onnx(str(tmp_path / "task" / "model"), str(tmp_path / "model.onnx"), 13)
    graph = onnx.load(path)
    fused = fuse_attention(graph)
    assert fused == (0 if model_type == "nezha" else backbone.config.num_hidden_layers)
    reader.load_examples(reader.make_examples(CLS_TEXTS), 4)
    plain_session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    fused_session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    for batch in reader.iterator(num_epochs=1):
        feed = {name: np.asarray(batch[name], dtype=np.int64) for name in info["inputs"]}
        for a, b in zip(fused_session.run(None, feed), plain_session.run(None, feed)):
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
