"""The one inference loop: batches -> encoder -> head -> per-row records.

Evaluation during training, ``Engine.evaluate`` / ``predict``, ``palm.load(...).predict`` and the
benchmarks all call :func:`infer_records`; a head turns the records into predictions
(``head.predictions``) or metrics (``head.epoch_postprocess``).
"""
from typing import Any, Callable, Dict, Iterable, List, Optional

Records = List[Dict[str, Any]]
Forward = Callable[[Dict[str, Any]], Dict[str, Any]]


def infer_records(backbone, head, batches: Iterable[Dict[str, Any]], progress_every: int = 0,
                  name: str = "", forward: Optional[Forward] = None) -> Records:
    """Run ``backbone`` + ``head`` in eval mode, without gradients, over ``batches``.

    The modules' train/eval modes are restored afterwards. ``forward`` (numpy batch -> the head's
    numpy outputs) replaces the Paddle forward: deployment engines (ONNX Runtime, Paddle
    Inference) plug in here and keep the head's post-processing.
    """
    import paddle

    from paddlepalm.forward import outputs_to_numpy, run_task, to_tensors

    if forward is not None:
        return [r for batch in batches for r in head.batch_postprocess(forward(batch), batch)]
    modes = (backbone.training, head.training)
    backbone.eval()
    head.eval()
    records: Records = []
    try:
        with paddle.no_grad():
            for i, batch in enumerate(batches, 1):
                out = run_task(backbone, head, to_tensors(batch))
                records += head.batch_postprocess(outputs_to_numpy(out), batch)
                if progress_every and i % progress_every == 0:
                    print("predict %s: %d batches" % (name, i))
    finally:
        if modes[0]:
            backbone.train()
        if modes[1]:
            head.train()
    return records


def infer_outputs(backbone, head, batch: Dict[str, Any]) -> Dict[str, Any]:
    """The head's numpy outputs for one batch (eval mode, no gradients)."""
    import paddle

    from paddlepalm.forward import outputs_to_numpy, run_task, to_tensors

    backbone.eval()
    head.eval()
    with paddle.no_grad():
        return outputs_to_numpy(run_task(backbone, head, to_tensors(batch)))


def evaluate_reader(backbone, head, reader, strategy=None, output_dir: Optional[str] = None,
                    progress_every: int = 0, name: str = "", forward: Optional[Forward] = None) -> Dict[str, float]:
    """One pass over ``reader``: the head's metrics (``{}`` without gold labels); predictions are
    written to ``output_dir`` when given. Under data parallel each rank runs its share of the
    batches and every rank gets the metrics of the whole pass."""
    batches = reader.iterator(num_epochs=1)
    if strategy is not None:
        batches = strategy.shard_batches(batches, reader.steps_per_epoch)
    records = infer_records(backbone, head, batches, progress_every if _is_main(strategy) else 0, name, forward)
    if strategy is not None:
        records = strategy.gather(records)
    return head.epoch_postprocess(records, reader, output_dir if _is_main(strategy) else None)


def predict_reader(backbone, head, reader, forward: Optional[Forward] = None) -> Records:
    """One pass over ``reader``: the head's user-facing predictions, one per example, in order."""
    return head.predictions(infer_records(backbone, head, reader.iterator(num_epochs=1), forward=forward), reader)


def _is_main(strategy) -> bool:
    return strategy is None or strategy.is_main
