"""``palm.load(dir)``: a saved model (see :mod:`paddlepalm.artifact`) ready to predict and evaluate
without the training script. ``dir`` may be a model, a checkpoint or a training output folder
(its ``best/``, else its newest checkpoint: :func:`paddlepalm.engine.checkpoints.resolve_model_dir`).
"""
import os
import threading
from typing import Any, Dict, List, Optional, Sequence

from paddlepalm.artifact import BACKBONE_DIR, HEADS_FILE, MODEL_FILE, read_head_weights, read_meta  # noqa: F401
from paddlepalm.artifact import load_head_weights, save_model, task_definition  # noqa: F401  (public names)


class PalmModel:
    """A loaded model: ``predict(task, inputs)`` returns predictions, ``evaluate(task, file)``
    returns metrics, for any of its tasks. Thread-safe.

    On CPU, batches of texts of mixed lengths run as length-sorted sub-batches where padding would
    cost more than another engine call of ``split_cost_tokens`` tokens (``None``: as given; on GPU a
    call costs more than padding, so batches stay whole); outputs are the same, in input order.
    """

    split_cost_tokens: Optional[int] = 32

    def __init__(self, path: str):
        import paddlepalm.head  # noqa: F401  (registers the built-in heads and readers: a fresh
        import paddlepalm.reader  # noqa: F401  process may load a model before importing either)
        from paddlepalm.engine.checkpoints import resolve_model_dir

        path = resolve_model_dir(path)
        self.meta = read_meta(path)
        self.path = path
        self.backbone = self._load_backbone(os.path.join(path, BACKBONE_DIR))
        self.readers, self.heads = {}, {}
        self._build_tasks(os.path.join(path, BACKBONE_DIR), read_head_weights(path))
        self._lock = threading.Lock()

    def _load_backbone(self, backbone_dir: str):
        from paddlepalm.backbone import FAMILIES, build_encoder

        family = FAMILIES.get(self.meta.get("backbone_class", "").lower())
        backbone = family.from_pretrained(backbone_dir, phase="predict") if family else \
            build_encoder(backbone_dir, phase="predict")
        backbone.eval()
        return backbone

    def _build_tasks(self, backbone_dir: str, head_state: Dict[str, Any]) -> None:
        from paddlepalm.registry import HEADS, READERS

        built_heads = {}
        for name, spec in self.meta["tasks"].items():
            reader_cls = READERS.get(spec["reader"]["type"])
            args = dict(spec["reader"]["args"])
            if "label_args" in spec["reader"]:  # a view of a reader shared by several tasks
                args.update(spec["reader"]["label_args"])
            elif spec.get("label_vocab") is not None and "label_map" in _params(reader_cls):
                args["label_map"] = spec["label_vocab"]
            if "label_args" not in spec["reader"] and spec.get("label_vocab") is not None \
                    and "label_map_config" in _params(reader_cls):
                args["label_map_config"] = {l: i for i, l in enumerate(spec["label_vocab"])}
            reader = reader_cls(backbone_dir, phase="predict", **args)
            reader.split_cost_tokens = self.split_cost_tokens if self._runs_on_cpu() else None
            self.readers[name] = reader.view(spec["reader"]["view"]) if "view" in spec["reader"] else reader
            owner = spec.get("head_owner", name)
            if owner not in built_heads:
                head = HEADS.get(spec["head"]["type"])(phase="predict", **spec["head"]["args"])
                load_head_weights(head, head_state, owner, os.path.join(self.path, HEADS_FILE))
                head.attach_backbone(self.backbone)
                head.eval()
                built_heads[owner] = head
            self.heads[name] = built_heads[owner]

    def _runs_on_cpu(self) -> bool:
        import paddle

        return paddle.device.get_device().startswith("cpu")

    def _engine_forward(self, task: str):
        """The forward replacing the Paddle one for ``task`` (deployment backends), or None."""
        return None

    @property
    def tasks(self) -> List[str]:
        return list(self.meta["tasks"])

    def _reader(self, task: str):
        if task not in self.readers:
            raise KeyError("unknown task %r; this model has %s" % (task, ", ".join(self.tasks)))
        return self.readers[task].clone("predict")

    def predict(self, task: str, inputs: Sequence[Any] = None, texts: Sequence[Any] = None,
                batch_size: int = 32) -> List[Dict[str, Any]]:
        """Predictions for raw inputs (strings, (text_a, text_b) pairs, or example dicts), in order."""
        from paddlepalm.engine.inference import predict_reader

        inputs = texts if inputs is None else inputs
        reader = self._reader(task)
        reader.load_examples(reader.make_examples(list(inputs)), batch_size)
        with self._lock:
            return predict_reader(self.backbone, self.heads[task], reader, forward=self._engine_forward(task))

    def evaluate(self, task: str, data_file: str, batch_size: int = 64, file_format: Optional[str] = None,
                 output_dir: Optional[str] = None) -> Dict[str, float]:
        """Metrics of ``task`` on a labelled file read like its training files (predictions are
        written to ``output_dir`` when given)."""
        from paddlepalm.engine.inference import evaluate_reader

        reader = self._reader(task)
        kwargs = {"file_format": file_format} if file_format else {}
        reader.load_data(data_file, batch_size, **kwargs)
        with self._lock:
            return evaluate_reader(self.backbone, self.heads[task], reader, output_dir=output_dir, name=task,
                                   forward=self._engine_forward(task))


def _params(cls) -> List[str]:
    from paddlepalm.utils.init_args import init_params

    return list(init_params(cls))


def load(path: str) -> PalmModel:
    """Load a saved paddlepalm model, a checkpoint, or a training output folder (its ``best/``,
    else its newest ``ckpt.step<N>/``)."""
    return PalmModel(path)
