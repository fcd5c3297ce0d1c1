"""One artifact per model: a directory that holds the encoder, every head, label maps, tokenizer
files and task definitions, so ``palm.load(dir)`` can predict without the training script.

Layout::

    <dir>/paddlepalm_model.json    task definitions: reader/head types and arguments, label vocab
    <dir>/backbone/                encoder in paddlepalm's checkpoint layout + tokenizer files
    <dir>/heads.pdparams           every head's parameters, keyed "<task>.<param>"
"""
import json
import os
import threading
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from paddlepalm.errors import CheckpointError

MODEL_FILE = "paddlepalm_model.json"
HEADS_FILE = "heads.pdparams"
BACKBONE_DIR = "backbone"
FORMAT_VERSION = 1
_PATH_ARGS = ("vocab_path", "tokenizer", "label_map_config")


def _jsonable(value: Any, where: str):
    from paddlepalm.reader.labels import LabelMap

    if isinstance(value, LabelMap):
        return list(value.labels)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, where) for k, v in value.items()}
    raise CheckpointError("%s: cannot save argument of type %s in %s" % (where, type(value).__name__, MODEL_FILE))


def task_definition(task) -> Dict[str, Any]:
    """The JSON description of one trainer's reader and head."""
    from paddlepalm.registry import HEADS, READERS
    from paddlepalm.utils.init_args import component_type

    reader = task.reader or task.predict_reader
    head = task.head or task.pred_head
    if reader is None or head is None:
        raise CheckpointError("task %r needs a reader and a head to be saved" % task.name)
    reader_args = {k: v for k, v in getattr(reader, "_init_args", {}).items() if k not in _PATH_ARGS
                   and k != "phase"}
    head_args = {k: v for k, v in getattr(head, "_init_args", {}).items() if k != "phase"}
    return {
        "reader": {"type": component_type(reader, READERS),
                   "args": _jsonable(reader_args, "task %r reader" % task.name)},
        "head": {"type": component_type(head, HEADS), "args": _jsonable(head_args, "task %r head" % task.name)},
        "label_vocab": reader.label_vocab(),
        "mix_ratio": task.mix_ratio,
    }


def save_model(path: str, backbone, tasks: Sequence, tokenizer) -> str:
    """Write the artifact (non-atomic; callers save into a temp dir and rename)."""
    import paddle

    from paddlepalm.backbone.weights import save_native

    os.makedirs(path, exist_ok=True)
    save_native(backbone, os.path.join(path, BACKBONE_DIR), extra_files=tuple(tokenizer.files))
    heads = {}
    seen = set()
    for t in tasks:
        head = t.head or t.pred_head
        if id(head) in seen:
            continue
        seen.add(id(head))
        for k, v in head.state_dict().items():
            heads["%s.%s" % (t.head_owner, k)] = v
    paddle.save(heads, os.path.join(path, HEADS_FILE))
    meta = {"format_version": FORMAT_VERSION, "backbone_class": type(backbone).__name__,
            "tasks": {t.name: dict(task_definition(t), head_owner=t.head_owner) for t in tasks}}
    with open(os.path.join(path, MODEL_FILE), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, ensure_ascii=False)
    return path


class PalmModel:
    """A loaded artifact: ``predict(task, inputs)`` for any of its tasks. Thread-safe."""

    def __init__(self, path: str):
        import paddle

        import paddlepalm.head  # noqa: F401  (registers the built-in heads and readers: a fresh
        import paddlepalm.reader  # noqa: F401  process may load a model before importing either)
        from paddlepalm.registry import HEADS, READERS

        meta_path = os.path.join(path, MODEL_FILE)
        if not os.path.isfile(meta_path):
            raise CheckpointError("%s: not a paddlepalm model directory (missing %s)" % (path, MODEL_FILE))
        with open(meta_path, encoding="utf-8") as f:
            self.meta = json.load(f)
        self.path = path
        backbone_dir = os.path.join(path, BACKBONE_DIR)
        self.backbone = self._load_backbone(backbone_dir)
        head_state = paddle.load(os.path.join(path, HEADS_FILE))
        self.readers, self.heads = {}, {}
        built_heads = {}
        for name, spec in self.meta["tasks"].items():
            reader_cls = READERS.get(spec["reader"]["type"])
            args = dict(spec["reader"]["args"])
            if spec.get("label_vocab") is not None and "label_map" in _params(reader_cls):
                args["label_map"] = spec["label_vocab"]
            if spec.get("label_vocab") is not None and "label_map_config" in _params(reader_cls):
                args["label_map_config"] = {l: i for i, l in enumerate(spec["label_vocab"])}
            self.readers[name] = reader_cls(backbone_dir, phase="predict", **args)
            owner = spec.get("head_owner", name)
            if owner not in built_heads:
                head = HEADS.get(spec["head"]["type"])(phase="predict", **spec["head"]["args"])
                prefix = owner + "."
                state = {k[len(prefix):]: v for k, v in head_state.items() if k.startswith(prefix)}
                missing = [k for k in head.state_dict() if k not in state]
                if missing:
                    raise CheckpointError("%s: head %r misses %s" % (os.path.join(path, HEADS_FILE), owner,
                                                                     ", ".join(missing)))
                head.set_state_dict(state)
                head.attach_backbone(self.backbone)
                head.eval()
                built_heads[owner] = head
            self.heads[name] = built_heads[owner]
        self._lock = threading.Lock()

    def _load_backbone(self, backbone_dir: str):
        """The encoder in eval mode (deployment subclasses that run another engine return None)."""
        from paddlepalm.backbone import FAMILIES, build_encoder

        family = FAMILIES.get(self.meta.get("backbone_class", "").lower())
        backbone = family.from_pretrained(backbone_dir, phase="predict") if family else \
            build_encoder(backbone_dir, phase="predict")
        backbone.eval()
        return backbone

    def _forward(self, task: str, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """One padded batch (numpy) -> the head's outputs (numpy); deployment backends override it."""
        from paddlepalm.forward import outputs_to_numpy, run_task, to_tensors

        return outputs_to_numpy(run_task(self.backbone, self.heads[task], to_tensors(batch)))

    @property
    def tasks(self) -> List[str]:
        return list(self.meta["tasks"])

    def predict(self, task: str, inputs: Sequence[Any] = None, texts: Sequence[Any] = None,
                batch_size: int = 32) -> List[Dict[str, Any]]:
        """Predict for raw inputs (strings, (text_a, text_b) pairs, or example dicts)."""
        import paddle

        if task not in self.readers:
            raise KeyError("unknown task %r; this model has %s" % (task, ", ".join(self.tasks)))
        inputs = texts if inputs is None else inputs
        template = self.readers[task]
        reader = template.clone("predict")
        reader.load_examples(reader.make_examples(list(inputs)), batch_size)
        head = self.heads[task]
        records = []
        with self._lock, paddle.no_grad():
            for batch in reader.iterator(num_epochs=1):
                records += head.batch_postprocess(self._forward(task, batch), batch)
        return head.predictions(records, reader)


def _params(cls) -> List[str]:
    from paddlepalm.utils.init_args import init_params

    return list(init_params(cls))


def load(path: str) -> PalmModel:
    """Load a saved paddlepalm model (a ``save`` output or any training checkpoint dir)."""
    return PalmModel(path)
