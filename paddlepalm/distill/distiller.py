"""The Distiller: the teacher's side of a distillation run, called by the training loop per task step.

The loop runs the student as usual (encoder with :meth:`Distiller.encoder_kwargs`, then the
task's head, whose ``'loss'`` is the hard-label loss) and hands the result over::

    total, parts = distiller.loss(task, batch, head_outputs, encoder_output, hard_loss)

``total`` = ``hard_weight * hard_loss + soft_weight * task_weight * soft_kd + sum(match weights *
match losses)``, with the temperature and both weights from their schedules (advanced by
:meth:`Distiller.on_step`). The projections of width-changing matches are parameters the loop's
optimizer must train (:meth:`Distiller.parameters`); their values and the schedules' positions
are in :meth:`Distiller.state_dict`. Cached teacher outputs are not saved: they are rebuilt.
"""
import dataclasses
import logging
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import paddle
import paddle.nn as nn

from paddlepalm.distill.cache import TeacherCache, reader_augments
from paddlepalm.distill.losses import FEATURE_LOSSES, KD_LOSSES, MATCH_LOSSES
from paddlepalm.distill.schedules import Schedule, ScheduleLike
from paddlepalm.distill.targets import target_for
from paddlepalm.errors import ConfigError

logger = logging.getLogger("paddlepalm")

FEATURES = tuple(FEATURE_LOSSES)
_FEATURE_LENGTH_AXES = {"hidden": (1,), "embeddings": (1,), "attention": (2, 3)}


@dataclasses.dataclass(frozen=True)
class Match:
    """One intermediate match: teacher ``layer_T`` -> student ``layer_S`` (0-based transformer
    layer indices; ``embeddings`` takes none), compared with ``loss`` and weighted by ``weight``;
    ``tasks`` limits it to those tasks (default: every distilled task)."""

    feature: str
    loss: str
    layer_T: Optional[int] = None
    layer_S: Optional[int] = None
    weight: float = 1.0
    tasks: Optional[Tuple[str, ...]] = None
    name: Optional[str] = None

    @property
    def teacher_key(self) -> str:
        return self.feature if self.feature == "embeddings" else "%s.%d" % (self.feature, self.layer_T)

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.feature == "embeddings":
            return "embeddings.%s" % self.loss
        return "%s.%d->%d.%s" % (self.feature, self.layer_T, self.layer_S, self.loss)

    @classmethod
    def from_dict(cls, spec: Union["Match", Mapping[str, Any]], key: str) -> "Match":
        """Validated from a config mapping; errors name ``key`` (e.g. ``distill.matches[1]``)."""
        if isinstance(spec, Match):
            return spec
        if not isinstance(spec, Mapping):
            raise ConfigError("%s: expected a mapping {layer_T, layer_S, feature, loss, weight}, got %r"
                              % (key, spec))
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(spec) - fields)
        if unknown:
            raise ConfigError("%s: unknown key(s) %s; expected %s" % (key, ", ".join(unknown), ", ".join(sorted(fields))))
        feature = spec.get("feature", "hidden")
        if feature not in FEATURE_LOSSES:
            raise ConfigError("%s.feature: unknown feature %r; expected one of %s" % (key, feature, ", ".join(FEATURES)))
        loss = spec.get("loss", FEATURE_LOSSES[feature][0])
        if loss not in FEATURE_LOSSES[feature]:
            raise ConfigError("%s.loss: %r does not apply to feature %r; use one of %s"
                              % (key, loss, feature, ", ".join(FEATURE_LOSSES[feature])))
        layers = {}
        for name in ("layer_T", "layer_S"):
            value = spec.get(name)
            if feature == "embeddings":
                if value is not None:
                    raise ConfigError("%s.%s: the embeddings feature takes no layer index" % (key, name))
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError("%s.%s: expected a 0-based layer index, got %r" % (key, name, value))
            layers[name] = value
        weight = spec.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ConfigError("%s.weight: expected a number >= 0, got %r" % (key, weight))
        tasks = spec.get("tasks")
        if tasks is not None:
            tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
        return cls(feature, loss, layers.get("layer_T"), layers.get("layer_S"), float(weight), tasks,
                   spec.get("name"))


@dataclasses.dataclass
class _Task:
    target: Any  # KDTarget
    weight: float
    matches: List[int]  # indices into Distiller.matches
    need_hidden: bool
    need_attentions: bool


class Distiller:
    """Teacher outputs (on the fly or cached), KD and intermediate losses, schedules, projections.

    Args:
        teacher: a :class:`~paddlepalm.distill.teacher.Teacher`.
        student: the student encoder (its hidden size and layer count check the matches).
        student_heads: task -> the student's head, for every task to distil (decides the KD
            target per task); tasks left out train on their hard loss alone (see :meth:`distills`).
        matches: intermediate matches, :class:`Match` or mappings (``layer_T``, ``layer_S``,
            ``feature``: hidden / attention / embeddings, ``loss``: mse / cosine / attention_kl,
            ``weight``, optional ``tasks``).
        temperature, soft_weight, hard_weight: a number or a schedule mapping
            ``{start, end, kind: constant|linear|cosine, warmup_steps}``.
        kd_loss: ``kl`` or ``soft_ce``. ``scale_by_t2``: multiply the soft loss by ``T**2``.
        task_weights: task -> multiplier of its soft loss (default 1).
        cache: cache teacher outputs per example where the task allows it (see
            :mod:`paddlepalm.distill.cache`). With ``readers`` (task -> training reader) the reader
            is checked for random augmentation and its features are run through the teacher in
            one fixed pass at the task's first step (:meth:`precompute`); without, rows are
            cached as examples first appear (then only the head type and batch are checked).
    """

    def __init__(self, teacher, student, student_heads: Mapping[str, Any], matches: Sequence = (),
                 temperature: ScheduleLike = 1.0, soft_weight: ScheduleLike = 0.5,
                 hard_weight: ScheduleLike = 0.5, kd_loss: str = "kl", scale_by_t2: bool = True,
                 task_weights: Optional[Mapping[str, float]] = None, cache: bool = False,
                 readers: Optional[Mapping[str, Any]] = None, key: str = "distill"):
        if kd_loss not in KD_LOSSES:
            raise ConfigError("%s.kd_loss: expected one of %s, got %r" % (key, ", ".join(KD_LOSSES), kd_loss))
        self.teacher = teacher
        self.student = student
        self.kd_loss = kd_loss
        self.scale_by_t2 = bool(scale_by_t2)
        self.temperature = self._schedule(temperature, key + ".temperature", positive=True)
        self.soft_weight = self._schedule(soft_weight, key + ".soft_weight")
        self.hard_weight = self._schedule(hard_weight, key + ".hard_weight")
        self.matches = [Match.from_dict(m, "%s.matches[%d]" % (key, i)) for i, m in enumerate(matches)]
        task_weights = dict(task_weights or {})
        for task in list(task_weights) + [t for m in self.matches for t in (m.tasks or ())]:
            if task not in student_heads:
                raise ConfigError("%s: task %r is not a student task (tasks: %s)"
                                  % (key, task, ", ".join(student_heads)))
        for task in student_heads:
            if task not in teacher.tasks:
                raise ConfigError("%s.teacher: the teacher has no task %r (it has: %s)"
                                  % (key, task, ", ".join(teacher.tasks)))
        self.projections = nn.LayerDict()
        self._tasks: Dict[str, _Task] = {}
        for task, head in student_heads.items():
            ids = [i for i, m in enumerate(self.matches) if m.tasks is None or task in m.tasks]
            for i in ids:
                self._check_match(i, task, "%s.matches[%d]" % (key, i))
            features = {self.matches[i].feature for i in ids}
            self._tasks[task] = _Task(target_for(head, task), float(task_weights.get(task, 1.0)), ids,
                                      bool(features & {"hidden", "embeddings"}), "attention" in features)
        self.student_heads = dict(student_heads)
        for task, head in self.student_heads.items():
            crf = getattr(head, "crf", None)
            if crf is not None and max(self.hard_weight.start, self.hard_weight.end) == 0 and \
                    not float(paddle.abs(crf.transitions).sum()):
                logger.warning("distill: task %r: the student's CRF transitions are untrained and the soft loss "
                               "does not reach them (it distils emissions); with hard_weight 0 they stay 0. "
                               "Copy the teacher's head or give hard_weight > 0", task)
        self.cache = TeacherCache()
        self._pending_precompute: Dict[str, Any] = {}
        if cache:
            for task in self._tasks:
                self._enable_cache(task, (readers or {}).get(task))

    # ------------------------------------------------------------------ set-up helpers
    @staticmethod
    def _schedule(spec: ScheduleLike, key: str, positive: bool = False) -> Schedule:
        try:
            schedule = Schedule.build(spec, key)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        low = min(schedule.start, schedule.end)
        if positive and low <= 0:
            raise ConfigError("%s: must stay > 0, got %s" % (key, schedule))
        if low < 0:
            raise ConfigError("%s: must stay >= 0, got %s" % (key, schedule))
        return schedule

    def _check_match(self, index: int, task: str, key: str) -> None:
        match = self.matches[index]
        tcfg, scfg = self.teacher.backbone(task).config, self.student.config
        for name, layer, cfg, who in (("layer_T", match.layer_T, tcfg, "teacher"),
                                      ("layer_S", match.layer_S, scfg, "student")):
            if layer is not None and not 0 <= layer < cfg.num_hidden_layers:
                raise ConfigError("%s.%s: layer %d is out of range: the %s has %d layers (0..%d)"
                                  % (key, name, layer, who, cfg.num_hidden_layers, cfg.num_hidden_layers - 1))
        name = "match%d" % index
        if match.feature == "attention" or tcfg.hidden_size == scfg.hidden_size:
            return
        if name in self.projections:
            if self.projections[name].weight.shape[1] != tcfg.hidden_size:
                raise ConfigError("%s: its tasks have teachers of different widths; give each its own match "
                                  "(with 'tasks')" % key)
        else:  # student -> teacher width, trained with the student (TinyBERT's W_h)
            self.projections[name] = nn.Linear(scfg.hidden_size, tcfg.hidden_size)
            logger.info("distill: %s (%s) projects the student's %d-wide features to the teacher's %d",
                        key, match.label, scfg.hidden_size, tcfg.hidden_size)

    def _enable_cache(self, task: str, reader) -> None:
        if reader is not None:
            augments, why = reader_augments(reader)
            if augments:
                logger.info("distill: task %r: teacher outputs computed on the fly (not cached): %s", task, why)
                return
        target = self._tasks[task].target
        if not target.cacheable:
            logger.info("distill: task %r: teacher outputs computed on the fly (not cached): its %s head's "
                        "targets do not have one row per example", task, type(target.head).__name__)
            return
        self.cache.enable(task)
        if reader is not None:
            self._pending_precompute[task] = reader  # filled at the task's first step
        logger.info("distill: task %r: teacher outputs cached once per example (%s)", task,
                    "one pass over the reader at its first step" if reader is not None else
                    "as examples first appear; resume is exact only with readers given")

    # ------------------------------------------------------------------ the loop's interface
    @property
    def tasks(self) -> List[str]:
        return list(self._tasks)

    def distills(self, task: str) -> bool:
        """Whether ``task`` is distilled (else the loop trains it on its hard loss alone)."""
        return task in self._tasks

    def encoder_kwargs(self, task: Union[str, Sequence[str]]) -> Dict[str, bool]:
        """What the loop must pass to the STUDENT encoder for this task's matches (for several
        tasks sharing one encoder pass: what any of them needs). Tasks not distilled need nothing."""
        names = [task] if isinstance(task, str) else list(task)
        specs = [self._tasks[n] for n in names if n in self._tasks]
        return {"output_hidden_states": any(t.need_hidden for t in specs),
                "output_attentions": any(t.need_attentions for t in specs)}

    def parameters(self) -> List[paddle.Tensor]:
        """Trainable parameters owned by the distiller (projections); empty when widths agree."""
        return list(self.projections.parameters())

    def named_parameters(self) -> List[Tuple[str, paddle.Tensor]]:
        """:meth:`parameters` with stable names (``distill.projections.<match>.<param>``)."""
        return [("distill.projections." + n, p) for n, p in self.projections.named_parameters()]

    def on_step(self, step: int, total_steps: Optional[int] = None) -> None:
        """Advance the schedules to optimizer step ``step`` of ``total_steps``."""
        for schedule in (self.temperature, self.soft_weight, self.hard_weight):
            schedule.on_step(step, total_steps)

    def state_dict(self) -> Dict[str, Any]:
        return {"temperature": self.temperature.state_dict(), "soft_weight": self.soft_weight.state_dict(),
                "hard_weight": self.hard_weight.state_dict(),
                "projections": {k: v.numpy() for k, v in self.projections.state_dict().items()}}

    def set_state_dict(self, state: Mapping[str, Any]) -> None:
        self.temperature.set_state_dict(state["temperature"])
        self.soft_weight.set_state_dict(state["soft_weight"])
        self.hard_weight.set_state_dict(state["hard_weight"])
        own = self.projections.state_dict()
        saved = state.get("projections", {})
        if set(saved) != set(own):
            raise ValueError("distiller state has projections %s, this distiller %s"
                             % (sorted(saved), sorted(own)))
        self.projections.set_state_dict({k: paddle.to_tensor(np.asarray(v)) for k, v in saved.items()})

    def loss(self, task: str, batch: Dict[str, Any], student_head_outputs: Dict[str, paddle.Tensor],
             student_encoder_output, hard_loss: Optional[paddle.Tensor] = None
             ) -> Tuple[paddle.Tensor, Dict[str, float]]:
        """The step's total loss for ``task`` and its parts (floats, for logging).

        ``batch`` is the tensor batch the student ran on (as from :func:`paddlepalm.forward.to_tensors`),
        ``student_encoder_output`` the student's :class:`~paddlepalm.backbone.EncoderOutput` (with
        hidden states / attentions as :meth:`encoder_kwargs` asks), ``hard_loss`` the head's
        ``'loss'`` (None when the batch has no labels: soft terms only).
        """
        if task not in self._tasks:
            raise KeyError("task %r is not distilled; tasks: %s" % (task, ", ".join(self._tasks)))
        spec = self._tasks[task]
        temperature = self.temperature.value
        student_targets = spec.target.extract(self.student_heads[task], student_head_outputs,
                                              student_encoder_output, batch)
        student_features = {i: self._student_feature(i, student_encoder_output) for i in spec.matches}
        teacher_targets, teacher_features = self._teacher_outputs(task, batch, student_targets, student_features)
        soft = spec.target.loss(student_targets, teacher_targets, batch, temperature, self.kd_loss,
                                self.scale_by_t2)
        soft_w, hard_w = self.soft_weight.value, self.hard_weight.value
        total = soft * (soft_w * spec.weight)
        parts = {"soft": float(soft), "temperature": temperature, "soft_weight": soft_w}
        if hard_loss is not None:
            total = total + hard_loss * hard_w
            parts.update(hard=float(hard_loss), hard_weight=hard_w)
        mask = batch.get("attention_mask")
        for i in spec.matches:
            match = self.matches[i]
            student_feature = student_features[i]
            name = "match%d" % i
            if name in self.projections:
                student_feature = self.projections[name](student_feature)
            value = MATCH_LOSSES[match.loss](student_feature, teacher_features[match.teacher_key], mask)
            total = total + value * match.weight
            parts["match." + match.label] = float(value)
        parts["total"] = float(total)
        return total, parts

    # ------------------------------------------------------------------ internals
    def _student_feature(self, index: int, encoder_output) -> paddle.Tensor:
        match = self.matches[index]
        return _feature(encoder_output, match.feature, match.layer_S, "student")

    def _teacher_keys(self, task: str) -> List[str]:
        return sorted({self.matches[i].teacher_key for i in self._tasks[task].matches})

    def _teacher_pass(self, task: str, batch):
        """Teacher targets and intermediate features for one tensor batch."""
        spec = self._tasks[task]
        outputs, encoded = self.teacher.forward(task, batch, spec.need_hidden, spec.need_attentions)
        targets = spec.target.extract(self.teacher.head(task), outputs, encoded, batch)
        features = {k: _feature(encoded, k.split(".")[0], None if k == "embeddings" else int(k.split(".")[1]),
                                "teacher") for k in self._teacher_keys(task)}
        return targets, features

    def precompute(self, task: Union[str, Sequence[str]], reader, batch_size: int = 64) -> int:
        """Fill the cache for every feature of ``reader`` in one fixed pass (features sorted by
        length, so little padding), independent of the training order: a resumed run rebuilds
        exactly the same values. ``task`` may be several tasks reading the same features (views of
        one shared reader): one pass for all, the teacher's encoder run once per batch when they
        share a teacher model. Returns the number of rows cached per task."""
        from paddlepalm.forward import to_tensors

        tasks = [task] if isinstance(task, str) else list(task)
        for t in tasks:
            if not self.cache.enabled(t):
                raise ValueError("distill: caching is not enabled for task %r" % t)
        started = time.perf_counter()
        features = reader.features
        order = np.argsort([len(f.get("input_ids", ())) for f in features], kind="stable")
        for start in range(0, len(order), batch_size):
            chunk = [features[i] for i in order[start:start + batch_size]]
            batch = to_tensors(reader.collate(chunk, np.random.default_rng(0)))
            if not _one_row_per_feature(batch):
                raise ValueError("distill: task %r: the reader's batches do not have one row per feature; "
                                 "it cannot be cached" % tasks[0])
            for t in tasks:
                targets, feats = self._teacher_pass(t, batch)
                self.cache.store(t, batch["feature_index"],
                                 dict(targets, **{"feature:" + k: v for k, v in feats.items()}))
        logger.info("distill: task%s %s: teacher outputs of %d features cached in %.1f s",
                    "s" if len(tasks) > 1 else "", ", ".join(map(repr, tasks)), len(features),
                    time.perf_counter() - started)
        return len(features)

    def _precompute_pending(self, task: str) -> None:
        """Precompute ``task`` and every other pending task whose reader reads the same features
        (``input_source``: views of one shared reader), in one pass."""
        reader = self._pending_precompute.pop(task)
        source = _input_source(reader)
        group = [task] + [t for t, r in self._pending_precompute.items() if _input_source(r) is source]
        for t in group[1:]:
            del self._pending_precompute[t]
        self.precompute(group, reader)

    def _teacher_outputs(self, task: str, batch, student_targets, student_features):
        spec = self._tasks[task]
        keys = {self.matches[i].teacher_key: student_features[i] for i in spec.matches}
        cached = self.cache.enabled(task) and _one_row_per_feature(batch)
        if cached:
            if task in self._pending_precompute:
                self._precompute_pending(task)
            like = dict(student_targets, **{"feature:" + k: v for k, v in keys.items()})
            axes = dict(spec.target.length_axes, **{"feature:" + k: _FEATURE_LENGTH_AXES[k.split(".")[0]]
                                                     for k in keys})
            found = self.cache.lookup(task, batch["feature_index"], like, axes)
            if found is not None:
                return ({k: found[k] for k in student_targets},
                        {k: found["feature:" + k] for k in keys})
        targets, features = self._teacher_pass(task, batch)
        if cached:  # a row the reader did not have at precompute time, or no reader given
            self.cache.store(task, batch["feature_index"],
                             dict(targets, **{"feature:" + k: v for k, v in features.items()}))
        return targets, features


def _input_source(reader):
    """The reader whose features and batches ``reader`` shares (a view's shared reader), or itself."""
    return getattr(reader, "input_source", reader)


def _one_row_per_feature(batch) -> bool:
    index = batch.get("feature_index")
    return index is not None and np.asarray(index).reshape(-1).shape[0] == batch["input_ids"].shape[0]


def _feature(encoder_output, feature: str, layer: Optional[int], who: str) -> paddle.Tensor:
    """``hidden`` layer i -> hidden_states[i + 1]; ``embeddings`` -> hidden_states[0];
    ``attention`` layer i -> attentions[i]."""
    if feature == "attention":
        if encoder_output.attentions is None:
            raise RuntimeError("distill: the %s encoder output has no attentions; run the student with "
                               "**distiller.encoder_kwargs(task)" % who)
        return encoder_output.attentions[layer]
    if encoder_output.hidden_states is None:
        raise RuntimeError("distill: the %s encoder output has no hidden states; run the student with "
                           "**distiller.encoder_kwargs(task)" % who)
    return encoder_output.hidden_states[0 if feature == "embeddings" else layer + 1]
