"""``Trainer``: one task -- a reader and a head bound to a (possibly shared) backbone.

It trains alone or as one task inside a :class:`~paddlepalm.MultiHeadTrainer`. Both routes work:

* PALM 2.x: ``build_forward(backbone, head)``, ``build_backward(optimizer)``,
  ``fit_reader(reader)``, ``load_pretrain(dir)``, ``set_saver(...)``, ``train()``, and for
  inference ``build_predict_forward``, ``load_ckpt``, ``fit_reader(reader, 'predict')``,
  ``predict(output_dir)``.
* Plain: ``Trainer(name, reader=..., head=..., dev_reader=...)`` then
  ``MultiHeadTrainer([...], backbone=...).fit(...)`` (or ``Trainer.fit`` for one task).
"""
import logging
from typing import Any, Dict, Optional, Union

logger = logging.getLogger("paddlepalm")


class Trainer:
    """One task: its name, mix ratio, loss weight, readers and head."""

    def __init__(self, name: str, mix_ratio: float = 1.0, reuse_head_with: Union[None, str, "Trainer"] = None,
                 reader=None, head=None, dev_reader=None, predict_reader=None, loss_weight: float = 1.0,
                 is_aux: bool = False):
        if not name or not isinstance(name, str) or "." in name or "/" in name:
            raise ValueError("a task name must be a non-empty string without '.' or '/', got %r" % (name,))
        self.name = name
        self.mix_ratio = float(mix_ratio)
        self.loss_weight = float(loss_weight)
        self.is_aux = is_aux
        self.head_owner = (reuse_head_with.name if isinstance(reuse_head_with, Trainer)
                           else reuse_head_with) or name
        self.reader, self.dev_reader, self.predict_reader = reader, dev_reader, predict_reader
        self.head = head
        self.backbone = None
        self.pred_backbone = None
        self.pred_head = None
        self._engine = None  # the MultiHeadTrainer driving this task
        self._solo = None  # a one-task MultiHeadTrainer when trained alone

    # ------------------------------------------------------------------ PALM: graph building
    def build_forward(self, backbone, task_head):
        """Bind ``task_head`` on top of ``backbone`` (PALM). Returns this trainer (the 'loss')."""
        self.backbone = backbone
        self.head = task_head
        task_head.attach_backbone(backbone)
        return self

    def build_predict_forward(self, pred_backbone, pred_head):
        """Bind the inference backbone and head (PALM); ``load_ckpt`` fills their weights."""
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

    # ------------------------------------------------------------------ single-task running
    def _solo_engine(self):
        from paddlepalm.multihead_trainer import MultiHeadTrainer

        if self._solo is None:
            self._solo = MultiHeadTrainer([self], backbone=self.backbone or self.pred_backbone)
        return self._solo

    def build_backward(self, optimizer, weight_decay: Optional[float] = None, use_ema: bool = False,
                       ema_decay: Optional[float] = None):
        """Set the optimizer (PALM); the Paddle optimizer is made when training starts."""
        return self._solo_engine().build_backward(optimizer, weight_decay, use_ema, ema_decay)

    def load_pretrain(self, model_path: str, convert: bool = False):
        """Load pretrained encoder weights (any supported layout) into the backbone."""
        backbone = self.backbone or self.pred_backbone
        if backbone is None:
            raise RuntimeError("%s: call build_forward(backbone, head) before load_pretrain" % self.name)
        return backbone.load_pretrained_weights(model_path, strict=False)

    def load_ckpt(self, model_path: str):
        """Load a paddlepalm checkpoint/model dir into this task's backbone and head(s)."""
        return self._solo_engine().load_ckpt(model_path) if self._engine is None \
            else self._engine.load_ckpt(model_path)

    load_predict_model = load_ckpt

    def set_saver(self, save_path: str, save_steps: int, save_type: str = "ckpt", keep_last: Optional[int] = None):
        return self._solo_engine().set_saver(save_path, save_steps, save_type, keep_last)

    def train(self, print_steps: int = 5, **kwargs):
        """Train this task alone for its reader's ``num_epochs`` (1 if None)."""
        engine = self._solo_engine()
        if engine.sampler is None:
            epochs = self.reader.num_epochs or 1
            engine.fit_readers_with_mixratio([self.reader], self.name, epochs)
        return engine.train(print_steps=print_steps, **kwargs)

    def fit(self, backbone=None, **kwargs):
        """Plain route for one task: see :meth:`MultiHeadTrainer.fit`."""
        from paddlepalm.multihead_trainer import MultiHeadTrainer

        return MultiHeadTrainer([self], backbone=backbone or self.backbone).fit(**kwargs)

    def predict(self, output_dir: Optional[str] = None, print_steps: int = 1000, reader=None) -> Dict[str, Any]:
        """Predict the predict reader (or ``reader``); writes predictions.json to ``output_dir``.

        Returns the head's metrics when the data has gold labels (else an empty dict).
        """
        engine = self._engine or self._solo_engine()
        return engine.predict_task(self, reader or self.predict_reader, output_dir, print_steps)

    def get_one_batch(self, phase: str = "train"):
        """The next batch of this task's ``phase`` reader (PALM API; broken in PALM 2.x)."""
        reader = {"train": self.reader, "dev": self.dev_reader, "predict": self.predict_reader}.get(phase)
        if reader is None:
            raise ValueError("task %r has no %s reader" % (self.name, phase))
        if phase == "train":
            engine = self._engine or self._solo_engine()
            if engine.sampler is not None:
                return next(engine._batches()[engine.task_index(self.name)])
        return next(iter(reader.iterator(num_epochs=1)))

    def train_one_step(self, batch) -> Dict[str, Any]:
        engine = self._engine or self._solo_engine()
        outputs, _ = engine.train_one_step(batch, engine.task_index(self.name))
        return outputs

    def predict_one_batch(self, batch) -> Dict[str, Any]:
        engine = self._engine or self._solo_engine()
        return engine.predict_one_batch(self.name, batch)

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

    def __repr__(self):
        return "Trainer(%r, mix_ratio=%g)" % (self.name, self.mix_ratio)
