"""paddlepalm.export.Predictor on Paddle Inference (fp32, and bf16 where the CPU has it)."""
import numpy as np
import pytest

import paddlepalm as palm
from tests.helpers import tiny_config, write_vocab


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from paddlepalm.export import export_model

    tmp = tmp_path_factory.mktemp("export_backends")
    vocab = write_vocab(str(tmp / "v"))
    path = tmp / "a.tsv"
    path.write_text("label\ttext_a\n0\tplay jazz music\n1\tbook a table for two\n2\twhat is the weather in paris\n"
                    "0\tplay rock\n", encoding="utf-8")
    reader = palm.reader.ClassifyReader(vocab, 16, seed=0).load_data(str(path), 2)
    task = palm.Trainer("a", reader=reader, head=palm.head.Classify(3, 32))
    trainer = palm.MultiHeadTrainer([task], backbone=palm.backbone.BERT.from_config(tiny_config("bert")))
    trainer.fit(num_epochs=1, print_steps=0)
    export_model(trainer, str(tmp / "export"))
    batch = next(iter(reader.clone("predict").load_data(str(path), 4).iterator(num_epochs=1)))
    return str(tmp / "export"), trainer, batch


def test_inference_backend_matches_jit(exported):
    from paddlepalm.export import Predictor

    path, trainer, batch = exported
    expected = trainer.predict_one_batch("a", batch)
    got = Predictor(path, "a", backend="inference").run(batch)
    assert sorted(got) == sorted(expected)
    np.testing.assert_allclose(got["logits"], expected["logits"], atol=1e-5)
    np.testing.assert_allclose(got["probs"], expected["probs"], atol=1e-5)


def test_inference_run_leaves_the_process_thread_count_alone(exported):
    """Paddle Inference resets MKL/OpenMP to 1 thread after its run; later Paddle ops of the
    process (a dygraph model) must keep the process's count."""
    from paddlepalm._env import _THREADS, _library_threads, set_num_threads
    from paddlepalm.export import Predictor

    path, _, batch = exported
    saved = dict(_THREADS)
    try:
        set_num_threads(2)
        Predictor(path, "a", backend="inference", threads=2).run(batch)
        assert _library_threads() == {"mkl_max_threads": 2, "omp_max_threads": 2}
    finally:
        if saved.get("num_threads"):
            set_num_threads(saved["num_threads"], saved["source"])
        _THREADS.clear()
        _THREADS.update(saved)


def test_bf16_backend_close_to_fp32(exported):
    from paddlepalm.export import Predictor

    with open("/proc/cpuinfo", encoding="utf-8") as f:
        flags = f.read()
    if "avx512_bf16" not in flags and "amx_bf16" not in flags:
        pytest.skip("CPU without bfloat16 instructions")
    path, trainer, batch = exported
    expected = trainer.predict_one_batch("a", batch)
    got = Predictor(path, "a", backend="inference", precision="bf16").run(batch)
    np.testing.assert_allclose(got["probs"], expected["probs"], atol=2e-2)


def test_bad_backend_options(exported):
    from paddlepalm.export import Predictor

    path, _, _ = exported
    with pytest.raises(ValueError, match="backend"):
        Predictor(path, "a", backend="onnx")
    with pytest.raises(ValueError, match="precision"):
        Predictor(path, "a", precision="bf16")
