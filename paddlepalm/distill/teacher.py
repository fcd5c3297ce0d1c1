"""The teacher: saved paddlepalm model(s), frozen, run without gradient.

One model for every task (``Teacher.load('out/best')``) or one per task
(``Teacher.load({'intent': 'intent_model', 'slot': {'path': 'ner_model', 'task': 'ner'}})``).
Every parameter gets ``stop_gradient=True`` and every layer stays in eval mode (no dropout), so
the teacher's outputs are a deterministic function of the batch and it is never updated.
"""
import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import paddle

from paddlepalm.errors import ConfigError
from paddlepalm.forward import encoder_inputs

logger = logging.getLogger("paddlepalm")

TeacherSource = Union[str, Any, Dict[str, Union[str, Any, Dict[str, str]]]]


class Teacher:
    """Frozen teacher models by task: ``forward(task, batch)`` -> (head outputs, encoder output)."""

    def __init__(self, models: Dict[str, Tuple[Any, str]]):
        """``models``: student task name -> (loaded :class:`~paddlepalm.model.PalmModel`, its task name)."""
        self._models = dict(models)
        self._last_pass = None  # (batch, its input_ids, encoder, options, encoder output): see forward
        for model in {id(m): m for m, _ in self._models.values()}.values():
            freeze(model.backbone)
            for head in model.heads.values():
                freeze(head)

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(cls, source: TeacherSource, tasks: Optional[Sequence[str]] = None,
             key: str = "distill.teacher") -> "Teacher":
        """From a model directory / loaded model (all of ``tasks``; default: all of its tasks), or a
        mapping task -> directory / model / ``{path, task}`` (the task's name inside that model).
        ``key`` names the config key in error messages."""
        from paddlepalm.model import PalmModel, load

        loaded: Dict[str, Any] = {}

        def get(src, where):
            if isinstance(src, PalmModel):
                return src
            if not isinstance(src, str):
                raise ConfigError("%s: expected a model directory, got %r" % (where, src))
            if src not in loaded:
                try:
                    loaded[src] = load(src)
                except Exception as e:
                    raise ConfigError("%s: cannot load teacher model %r: %s" % (where, src, e)) from e
            return loaded[src]

        models: Dict[str, Tuple[Any, str]] = {}
        if isinstance(source, dict):
            for task, spec in source.items():
                where = "%s.%s" % (key, task)
                if isinstance(spec, dict):
                    unknown = set(spec) - {"path", "task"}
                    if unknown or "path" not in spec:
                        raise ConfigError("%s: expected {path, task}, got keys %s" % (where, sorted(spec)))
                    models[task] = (get(spec["path"], where + ".path"), spec.get("task", task))
                else:
                    models[task] = (get(spec, where), task)
        else:
            model = get(source, key)
            for task in (model.tasks if tasks is None else tasks):
                models[task] = (model, task)
        for task, (model, inner) in models.items():
            if inner not in model.heads:
                where = "%s.%s" % (key, task) if isinstance(source, dict) else key
                raise ConfigError("%s: teacher model %s has no task %r (it has: %s)"
                                  % (where, model.path, inner, ", ".join(model.tasks)))
        if tasks is not None:
            missing = [t for t in tasks if t not in models]
            if missing:
                raise ConfigError("%s: no teacher for task(s) %s" % (key, ", ".join(missing)))
        return cls(models)

    # ------------------------------------------------------------------ lookup
    @property
    def tasks(self) -> List[str]:
        return list(self._models)

    def _entry(self, task: str):
        if task not in self._models:
            raise KeyError("the teacher has no task %r; it has %s" % (task, ", ".join(self._models)))
        return self._models[task]

    def model(self, task: str):
        return self._entry(task)[0]

    def backbone(self, task: str):
        return self._entry(task)[0].backbone

    def head(self, task: str):
        model, inner = self._entry(task)
        return model.heads[inner]

    def reader(self, task: str):
        """The teacher's own (predict) reader of the task: its tokenizer and label map."""
        model, inner = self._entry(task)
        return model.readers[inner]

    def definition(self, task: str) -> Dict[str, Any]:
        """The task's entry in the teacher's ``paddlepalm_model.json``."""
        model, inner = self._entry(task)
        return model.meta["tasks"][inner]

    def source(self, task: str) -> str:
        from paddlepalm.model import MODEL_FILE

        return os.path.join(self.model(task).path, MODEL_FILE)

    def parameters(self) -> List[paddle.Tensor]:
        """Every teacher parameter (each once)."""
        seen, out = set(), []
        for model in {id(m): m for m, _ in self._models.values()}.values():
            layers = [model.backbone] + list(model.heads.values())
            for layer in layers:
                for p in layer.parameters():
                    if id(p) not in seen:
                        seen.add(id(p))
                        out.append(p)
        return out

    # ------------------------------------------------------------------ running
    def forward(self, task: str, batch: Dict[str, paddle.Tensor], output_hidden_states: bool = False,
                output_attentions: bool = False):
        """The teacher's head outputs and encoder output for a (tensor) batch, without gradient.
        Label fields are withheld from the head (no teacher loss is computed)."""
        from paddlepalm.forward import head_encoder_options

        backbone, head = self.backbone(task), self.head(task)
        if backbone.training:  # someone called .train() on it: the teacher never drops out
            backbone.eval()
        if head.training:
            head.eval()
        inputs = {k: v for k, v in batch.items() if k not in head.label_fields}
        with paddle.no_grad():
            # the distiller may read every position of the teacher's output: never first_token_only
            options = head_encoder_options([head], {"output_hidden_states": output_hidden_states,
                                                    "output_attentions": output_attentions,
                                                    "first_token_only": False}, backbone)
            encoded = self._encode(backbone, batch, options)  # a head may want more layers
            outputs = head(encoded, inputs)
        return outputs, encoded

    def _encode(self, backbone, batch, options):
        """The teacher encoder's output for ``batch``. Tasks labelling the same inputs (views of one
        shared reader) get the same batch object in a step: their teacher model runs once for all
        of them, as the student's encoder does. Only the last pass is kept (with its batch, so the
        identity test cannot match a new batch)."""
        last = self._last_pass
        if last is not None and last[0] is batch and last[1] is batch.get("input_ids") and last[2] is backbone \
                and last[3] == options:
            return last[4]
        encoded = backbone(**encoder_inputs(batch, backbone), **options)
        self._last_pass = (batch, batch.get("input_ids"), backbone, dict(options), encoded)
        return encoded

    __call__ = forward


def freeze(layer: paddle.nn.Layer) -> None:
    """Eval mode and ``stop_gradient`` on every parameter: the layer is never trained."""
    layer.eval()
    for p in layer.parameters():
        p.stop_gradient = True
