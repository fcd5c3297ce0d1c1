"""PALM 2.x's API on top of the engine: ``Trainer`` (one task) and ``MultiHeadTrainer``.

Every PALM method maps onto :class:`~paddlepalm.engine.Engine` / :class:`~paddlepalm.engine.TaskSpec`:
``build_forward`` binds a head to the backbone, ``build_backward`` sets the optimizer,
``fit_reader(s)_with_mixratio`` plans the sampling, ``set_saver`` / ``set_evaluation`` set
training arguments, ``train`` runs the fit loop, ``load_ckpt`` loads weights (and training state),
``predict(output_dir)`` writes ``predictions.json``. Imports go one way: compat -> engine.
"""
import logging
import os
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np

from paddlepalm.engine.args import TrainingArguments
from paddlepalm.engine.checkpoints import TRAINER_STATE
from paddlepalm.engine.engine import Engine
from paddlepalm.engine.inference import evaluate_reader
from paddlepalm.engine.spec import TaskSpec

logger = logging.getLogger("paddlepalm")

PALM_PRINT_STEPS = 5  # PALM 2.x's train() default


class Trainer(TaskSpec):
    """One task (PALM 2.x ``palm.Trainer``): a spec plus PALM's single-task methods.

    Plain route: ``Trainer(name, reader=..., head=..., dev_reader=...)`` inside a
    ``MultiHeadTrainer``. PALM route: ``build_forward(backbone, head)``, ``build_backward``,
    ``fit_reader``, ``load_pretrain``, ``set_saver``, ``train``; for inference
    ``build_predict_forward``, ``load_ckpt``, ``fit_reader(reader, 'predict')``, ``predict``.
    """

    def __init__(self, name: str, mix_ratio: float = 1.0, reuse_head_with: Union[None, str, "Trainer"] = None,
                 reader=None, head=None, dev_reader=None, predict_reader=None, loss_weight: float = 1.0,
                 is_aux: bool = False):
        super().__init__(name, mix_ratio, reuse_head_with, reader, head, dev_reader, predict_reader,
                         loss_weight, is_aux)
        self.backbone = None
        self.pred_backbone = None
        self.pred_head = None
        self._engine: Optional["MultiHeadTrainer"] = None  # the multi-task trainer this task is in
        self._solo: Optional["MultiHeadTrainer"] = None  # a one-task trainer when trained alone

    # ------------------------------------------------------------------ graph building
    def build_forward(self, backbone, task_head):
        """Bind ``task_head`` on top of ``backbone``. Returns this trainer (PALM's 'loss')."""
        self.backbone = backbone
        self.head = task_head
        task_head.attach_backbone(backbone)
        return self

    def build_predict_forward(self, pred_backbone, pred_head):
        """Bind the inference backbone and head; ``load_ckpt`` fills their weights."""
        self.pred_backbone = pred_backbone
        self.pred_head = pred_head
        pred_head.attach_backbone(pred_backbone)
        return {"logits": None}

    def set_as_aux(self) -> None:
        """Mark as auxiliary: trained, but never the task that decides when training stops."""
        self.is_aux = True

    def fit_reader(self, reader, phase: str = "train"):
        """Attach a reader for ``phase`` ('train', 'dev' or 'predict'); returns its batch iterator."""
        if phase == "train":
            self.reader = reader
        elif phase in ("dev", "val", "eval"):
            self.dev_reader = reader
        elif phase in ("predict", "test"):
            self.predict_reader = reader
        else:
            raise ValueError("phase must be 'train', 'dev' or 'predict', got %r" % phase)
        if self.backbone is not None or self.pred_backbone is not None:
            reader.register_with(self.pred_backbone if phase in ("predict", "test") and self.pred_backbone
                                 else self.backbone)
        return reader.iterator() if reader._batcher is not None else None

    # ------------------------------------------------------------------ the engine that runs this task
    def engine(self) -> "MultiHeadTrainer":
        """The multi-task trainer this task belongs to, else a one-task trainer of its own."""
        if self._engine is not None:
            return self._engine
        if self._solo is None:
            self._solo = MultiHeadTrainer([self], backbone=self.backbone or self.pred_backbone, _solo=True)
        return self._solo

    def build_backward(self, optimizer, weight_decay: Optional[float] = None, use_ema: bool = False,
                       ema_decay: Optional[float] = None):
        """Set the optimizer; the Paddle optimizer is made when training starts."""
        return self.engine().build_backward(optimizer, weight_decay, use_ema, ema_decay)

    def load_pretrain(self, model_path: str, convert: bool = False):
        """Load pretrained encoder weights (any supported layout) into the backbone."""
        backbone = self.backbone or self.pred_backbone
        if backbone is None:
            raise RuntimeError("%s: call build_forward(backbone, head) before load_pretrain" % self.name)
        return backbone.load_pretrained_weights(model_path, strict=False)

    def load_ckpt(self, model_path: str):
        """Load a paddlepalm checkpoint/model dir into this task's backbone and head(s)."""
        return self.engine().load_ckpt(model_path)

    load_predict_model = load_ckpt

    def set_saver(self, save_path: str, save_steps: int, save_type: str = "ckpt", keep_last: Optional[int] = None):
        """Save every ``save_steps`` steps -- configures the trainer that really trains this task."""
        return self.engine().set_saver(save_path, save_steps, save_type, keep_last)

    def train(self, print_steps: int = PALM_PRINT_STEPS, **kwargs):
        """Train this task alone for its reader's ``num_epochs`` (1 if None)."""
        engine = self.engine()
        if engine.sampler is None:
            engine.fit_readers_with_mixratio([self.reader], self.name, self.reader.num_epochs or 1)
        return engine.train(print_steps=print_steps, **kwargs)

    def fit(self, backbone=None, **kwargs):
        """Plain route for one task: see :meth:`Engine.fit`."""
        return MultiHeadTrainer([self], backbone=backbone or self.backbone).fit(**kwargs)

    def predict(self, output_dir: Optional[str] = None, print_steps: int = 1000, reader=None) -> Dict[str, Any]:
        """Predict the predict reader (or ``reader``); writes predictions.json to ``output_dir``.

        Returns the head's metrics when the data has gold labels (else an empty dict).
        """
        return self.engine().predict_task(self, reader or self.predict_reader, output_dir, print_steps)

    def get_one_batch(self, phase: str = "train"):
        """The next batch of this task's ``phase`` reader (PALM API; broken in PALM 2.x)."""
        reader = {"train": self.reader, "dev": self.dev_reader, "predict": self.predict_reader}.get(phase)
        if reader is None:
            raise ValueError("task %r has no %s reader" % (self.name, phase))
        engine = self.engine()
        if phase == "train" and engine.loop is not None:
            return next(engine.loop.iterators()[engine.task_index(self.name)])
        return next(iter(reader.iterator(num_epochs=1)))

    def train_one_step(self, batch) -> Dict[str, Any]:
        engine = self.engine()
        return engine.train_one_step(batch, engine.task_index(self.name))[0]

    def predict_one_batch(self, batch) -> Dict[str, Any]:
        return self.engine().predict_one_batch(self.name, batch)

    # ------------------------------------------------------------------ PALM properties
    @property
    def num_examples(self) -> int:
        return self.reader.num_examples if self.reader is not None else 0

    @property
    def num_epochs(self):
        return self.reader.num_epochs if self.reader is not None else None

    @property
    def steps_per_epoch(self) -> int:
        return self.reader.steps_per_epoch

    steps_pur_epoch = steps_per_epoch

    @property
    def cur_train_step(self) -> int:
        engine = self._engine or self._solo
        return 0 if engine is None or engine.sampler is None else engine.sampler.counts[engine.task_index(self.name)]

    @property
    def cur_train_epoch(self) -> int:
        return 0 if self.reader is None or self.reader._batcher is None else self.reader.batcher.epoch


class MultiHeadTrainer(Engine):
    """PALM 2.x's ``MultiHeadTrainer([trainer_a, trainer_b, ...], backbone=None)`` on the engine.

    ``sampling``: 'mix_ratio' (PALM, default), 'temperature' or 'annealed'. Deterministic given ``seed``.
    """

    def __init__(self, trainers: Sequence[Trainer], backbone=None, main_task: Optional[str] = None,
                 sampling: str = "mix_ratio", temperature: float = 1.0, seed: int = 0, strategy=None,
                 step_mode: str = "sampled", tasks_per_step: Optional[int] = None, balancer=None,
                 _solo: bool = False):
        if not trainers:
            raise ValueError("MultiHeadTrainer needs at least one Trainer")
        super().__init__(trainers, backbone, main_task, sampling, temperature, seed, strategy, step_mode,
                         tasks_per_step, balancer)
        if not _solo:
            for t in self.tasks:
                if isinstance(t, Trainer):
                    t._engine = self
        self.args = TrainingArguments(keep_last=None, objective=None)  # PALM: set_saver/set_evaluation decide

    @property
    def trainers(self):
        return self.tasks

    # ------------------------------------------------------------------ wiring
    def build_forward(self):
        """Check every trainer shares one backbone (PALM: call after each trainer.build_forward)."""
        backbones = {id(b): b for b in [self.backbone] + [getattr(t, "backbone", None) for t in self.tasks]
                     if b is not None}
        if len(backbones) != 1:
            raise ValueError("all tasks must share one backbone instance (found %d)" % len(backbones))
        self.backbone = next(iter(backbones.values()))
        for t in self.tasks:
            if getattr(t, "backbone", None) is None and t.head is not None and isinstance(t, Trainer):
                t.build_forward(self.backbone, t.head)
        return self

    def bind(self):
        if self.backbone is None or any(isinstance(t, Trainer) and t.head is not None and t.backbone is None
                                        for t in self.tasks):
            self.build_forward()
        network = super().bind()
        for t in self.tasks:
            if isinstance(t, Trainer) and t.backbone is None:
                t.backbone = self.backbone
        return network

    def build_backward(self, optimizer, weight_decay: Optional[float] = None, use_ema: bool = False,
                       ema_decay: Optional[float] = None):
        """Set the optimizer (a paddlepalm Optimizer); the Paddle one is built at train time."""
        if use_ema:
            logger.warning("use_ema is not supported in paddlepalm 3; training without EMA")
        self.optimizer_spec = optimizer
        self.weight_decay = weight_decay
        return self

    def fit_readers_with_mixratio(self, readers: Union[Sequence, Dict[str, Any]], sampling_reference: str,
                                  num_epochs: float, phase: str = "train", max_steps: Optional[int] = None):
        """Attach train readers (list aligned with the trainers, or name -> reader) and plan steps.

        ``sampling_reference`` names the main task: it runs ``num_epochs`` epochs in expectation
        and the total number of steps follows from its sampling share.
        """
        if isinstance(readers, dict):
            unknown = set(readers) - {t.name for t in self.tasks}
            if unknown:
                raise KeyError("readers for unknown task(s): %s" % ", ".join(sorted(unknown)))
            pairs = [(t, readers[t.name]) for t in self.tasks if t.name in readers]
        else:
            if len(readers) != len(self.tasks):
                raise ValueError("got %d readers for %d trainers" % (len(readers), len(self.tasks)))
            pairs = list(zip(self.tasks, readers))
        for t, r in pairs:
            t.fit_reader(r, phase)
        if phase != "train":
            return None
        self.task_index(sampling_reference)
        self.plan(num_epochs, sampling_reference, max_steps)
        return self.loop.iterators()

    fit_readers = fit_readers_with_mixratio

    @property
    def overall_train_steps(self) -> int:
        return self.sampler.total_steps if self.sampler else 0

    def set_saver(self, save_path: str, save_steps: int, save_type: str = "ckpt",
                  keep_last: Optional[int] = None) -> None:
        """Save ``ckpt.step<N>`` (and/or ``pred.step<N>`` for save_type 'predict') every N steps."""
        kinds = {k.strip() for k in save_type.split(",")}
        if not kinds <= {"ckpt", "predict"}:
            raise ValueError("save_type must be 'ckpt', 'predict' or 'ckpt,predict', got %r" % save_type)
        self.args = self.args.updated(save_path=save_path, save_steps=save_steps, save_type=save_type,
                                      keep_last=keep_last)

    def set_evaluation(self, eval_steps: Optional[int] = None, objective=None, patience: Optional[int] = None):
        """Evaluate every task with a dev reader each ``eval_steps``; keep the best by ``objective``."""
        self.args = self.args.updated(eval_steps=eval_steps, objective=objective, patience=patience)

    @property
    def save_path(self) -> Optional[str]:
        return self.args.save_path

    # ------------------------------------------------------------------ weights
    def load_pretrain(self, model_path: str, convert: bool = False):
        self.bind()
        return self.backbone.load_pretrained_weights(model_path, strict=False)

    def inference_modules(self, task):
        return (getattr(task, "pred_backbone", None) or self.backbone or getattr(task, "backbone", None),
                getattr(task, "pred_head", None) or task.head)

    def weight_targets(self):
        backbones = [self.backbone] + [getattr(t, "pred_backbone", None) for t in self.tasks]
        return backbones, {t.name: [t.head, getattr(t, "pred_head", None)] for t in self.tasks}

    def load_ckpt(self, model_path: str) -> None:
        """Load a checkpoint / saved model: encoder and head weights, and training state if present."""
        self.load_weights(model_path)
        if os.path.isfile(os.path.join(model_path, TRAINER_STATE)) and self.loop is not None:
            self.restore_training_state(model_path)

    # ------------------------------------------------------------------ training
    def train(self, print_steps: int = PALM_PRINT_STEPS, max_steps: Optional[int] = None, accumulate_steps: int = 1,
              amp: Optional[str] = None, progress: Optional[bool] = None, resume: Optional[str] = None,
              stop_after: Optional[int] = None, callbacks=()) -> Dict[str, Any]:
        """Run the fit loop. Returns a summary (steps, per-task steps, last metrics, best score)."""
        if self.sampler is None:
            raise RuntimeError("call fit_readers_with_mixratio(...) (or Trainer.fit_reader) before train()")
        args = self.args.updated(print_steps=print_steps, max_steps=max_steps, accumulate_steps=accumulate_steps,
                                 amp=amp, progress=progress, resume=resume, stop_after=stop_after)
        return self.run(args, callbacks)

    def fit(self, optimizer=None, args: Optional[TrainingArguments] = None, callbacks=(), **overrides):
        """One call: readers already attached to the trainers; trains, evaluates, saves (see
        :meth:`Engine.fit`; defaults from :class:`TrainingArguments`)."""
        self.build_forward()
        return super().fit(optimizer, args, callbacks, **overrides)

    def train_one_step(self, batch, task_id: int):
        """Forward + backward on one batch of task ``task_id`` (no optimizer step). Returns (outputs, id)."""
        if self.loop is None:
            raise RuntimeError("plan training first (fit_readers_with_mixratio)")
        return self.loop.train_step(batch, task_id), task_id

    # ------------------------------------------------------------------ PALM prediction (writes files)
    def predict_task(self, t, reader, output_dir: Optional[str] = None, print_steps: int = 1000) -> Dict[str, Any]:
        """One pass over ``reader`` with task ``t``: writes ``predictions.json`` to ``output_dir``;
        the metrics when the data has labels."""
        if reader is None:
            raise ValueError("task %r has no reader to predict; call fit_reader(reader, 'predict')" % t.name)
        backbone, head = self.inference_modules(t)
        if backbone is None or head is None:
            raise RuntimeError("task %r: build_forward/build_predict_forward first" % t.name)
        return evaluate_reader(backbone, head, reader, self.strategy, output_dir, print_steps, t.name)

    def predict(self, output_dir: Optional[str] = None, print_steps: int = 1000, *more, **kwargs):
        """PALM: predict every task with a predict reader into ``<output_dir>/<task>/``; returns
        metrics per task. ``predict(task_name, inputs)`` returns predictions (see :meth:`Engine.predict`)."""
        if isinstance(output_dir, str) and output_dir in {t.name for t in self.tasks} and \
                not isinstance(print_steps, int):
            return super().predict(output_dir, print_steps, *more, **kwargs)
        return {t.name: self.predict_task(t, t.predict_reader, os.path.join(output_dir, t.name) if output_dir
                                          else None, print_steps)
                for t in self.tasks if t.predict_reader is not None}

    def build_predict_forward(self):
        """PALM HEAD API: every trainer must have called its own build_predict_forward."""
        missing = [t.name for t in self.tasks if getattr(t, "pred_head", None) is None and t.head is None]
        if missing:
            raise RuntimeError("tasks without a head: %s" % ", ".join(missing))
        return self

    def merge_inference_readers(self, readers):
        """PALM HEAD API: readers (list aligned with trainers, or name -> reader) ->
        ``fn(task_name)`` returning that task's predict batches."""
        if not isinstance(readers, dict):
            readers = {t.name: r for t, r in zip(self.tasks, readers)}
        for name, reader in readers.items():
            self.tasks[self.task_index(name)].fit_reader(reader, "predict")
        return lambda task_name: readers[task_name].iterator(num_epochs=1)

    def predict_one_batch(self, task_name: str, batch) -> Dict[str, np.ndarray]:
        from paddlepalm.engine.inference import infer_outputs

        t = self.task(task_name)
        backbone, head = self.inference_modules(t)
        return infer_outputs(backbone, head, batch)
