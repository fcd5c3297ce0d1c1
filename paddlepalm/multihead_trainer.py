"""``MultiHeadTrainer``: several tasks over one shared encoder, a task sampled at every step.

It is also the engine under a single :class:`~paddlepalm.Trainer`: there is one training loop.
"""
import json
import logging
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from paddlepalm import checkpoint as ckpt
from paddlepalm import distributed as _dist
from paddlepalm.errors import CheckpointError
from paddlepalm.sampling import Sampler, TaskInfo
from paddlepalm.trainer import Trainer

logger = logging.getLogger("paddlepalm")


def _objective_score(objective, metrics: Dict[str, Dict[str, float]]) -> Optional[float]:
    """``'task.metric'`` or ``{'task.metric': weight, ...}`` -> weighted sum (None if missing)."""
    if objective is None:
        return None
    weights = {objective: 1.0} if isinstance(objective, str) else dict(objective)
    total = 0.0
    for key, w in weights.items():
        task, _, metric = key.partition(".")
        if task not in metrics or metric not in metrics[task]:
            raise KeyError("objective %r: task %r has metrics %s" % (key, task, sorted(metrics.get(task, {}))))
        total += float(w) * float(metrics[task][metric])
    return total


class MultiHeadTrainer:
    """Multi-task trainer: ``MultiHeadTrainer([trainer_a, trainer_b, ...], backbone=None)``.

    ``sampling``: 'mix_ratio' (PALM, default), 'temperature' or 'annealed' (see
    :mod:`paddlepalm.sampling`). Deterministic given ``seed``.
    """

    def __init__(self, trainers: Sequence[Trainer], backbone=None, main_task: Optional[str] = None,
                 sampling: str = "mix_ratio", temperature: float = 1.0, seed: int = 0):
        if not trainers:
            raise ValueError("MultiHeadTrainer needs at least one Trainer")
        names = [t.name for t in trainers]
        if len(set(names)) != len(names):
            raise ValueError("task names must be unique, got %s" % names)
        self.trainers: List[Trainer] = list(trainers)
        for t in self.trainers:
            t._engine = self
        self.backbone = backbone
        self.main_task = main_task
        self.sampling, self.temperature, self.seed = sampling, temperature, seed
        self.sampler: Optional[Sampler] = None
        self.optimizer_spec = None
        self.optimizer = None
        self.weight_decay = None
        self.amp: Optional[str] = None
        self.accumulate_steps = 1
        self.save_path: Optional[str] = None
        self.save_steps: Optional[int] = None
        self.save_type = "ckpt"
        self.keep_last: Optional[int] = None
        self.eval_steps: Optional[int] = None
        self.objective = None
        self.patience: Optional[int] = None
        self.log_path: Optional[str] = None
        self.best_score: Optional[float] = None
        self.bad_evals = 0
        self.global_step = 0
        self.history: List[Dict[str, Any]] = []
        self._iterators: Optional[list] = None
        self._scaler = None
        self._shard_weight = 1.0  # this rank's share of the global batch (data parallel)
        self._vdl = None  # VisualDL writer, created on first log when visualdl is installed

    # ------------------------------------------------------------------ wiring
    def task_index(self, name: str) -> int:
        for i, t in enumerate(self.trainers):
            if t.name == name:
                return i
        raise KeyError("unknown task %r; tasks: %s" % (name, ", ".join(t.name for t in self.trainers)))

    def build_forward(self):
        """Check every trainer shares one backbone (PALM: call after each trainer.build_forward)."""
        backbones = {id(t.backbone) for t in self.trainers if t.backbone is not None}
        if self.backbone is not None:
            backbones.add(id(self.backbone))
        if len(backbones) != 1:
            raise ValueError("all tasks must share one backbone instance (found %d)" % len(backbones))
        self.backbone = self.backbone or next(t.backbone for t in self.trainers if t.backbone is not None)
        for t in self.trainers:
            if t.backbone is None and t.head is not None:
                t.build_forward(self.backbone, t.head)
        self._check_heads()
        return self

    def _check_heads(self):
        for t in self.trainers:
            if t.head_owner != t.name:
                owner = next((o for o in self.trainers if o.name == t.head_owner), None)
                if owner is None:
                    raise ValueError("task %r reuses the head of unknown task %r" % (t.name, t.head_owner))
                t.head = owner.head
                if t.backbone is None and owner.backbone is not None:
                    t.backbone = owner.backbone
            if t.head is None:
                raise ValueError("task %r has no head" % t.name)

    def _ensure_built(self):
        if self.backbone is None or any(t.head is not None and t.backbone is None for t in self.trainers):
            self.build_forward()
        self._check_heads()

    def named_parameters(self):
        """(structured name, parameter): ``backbone.*`` then ``heads.<owner>.*`` (shared heads once)."""
        seen = set()
        for n, p in self.backbone.named_parameters():
            seen.add(id(p))
            yield "backbone." + n, p
        for t in self.trainers:
            if t.head_owner != t.name:
                continue
            for n, p in t.head.named_parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield "heads.%s.%s" % (t.name, n), p

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
            unknown = set(readers) - {t.name for t in self.trainers}
            if unknown:
                raise KeyError("readers for unknown task(s): %s" % ", ".join(sorted(unknown)))
            pairs = [(t, readers[t.name]) for t in self.trainers if t.name in readers]
        else:
            if len(readers) != len(self.trainers):
                raise ValueError("got %d readers for %d trainers" % (len(readers), len(self.trainers)))
            pairs = list(zip(self.trainers, readers))
        for t, r in pairs:
            t.fit_reader(r, phase)
        if phase != "train":
            return None
        self.main_task = sampling_reference
        self.task_index(sampling_reference)
        for t in self.trainers:
            if t.reader is None:
                raise ValueError("task %r has no train reader" % t.name)
            if t.reader._batcher is None:
                raise ValueError("task %r: its reader has no data; call load_data first" % t.name)
        infos = [TaskInfo(t.name, t.reader.num_examples, t.reader.batch_size, t.reader.steps_per_epoch,
                          t.mix_ratio, t.name == sampling_reference) for t in self.trainers]
        self.sampler = Sampler(infos, self.sampling, num_epochs, self.temperature, self.seed, max_steps)
        self._iterators = None
        return self._batches()

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
        self.save_path, self.save_steps, self.save_type, self.keep_last = save_path, save_steps, save_type, keep_last

    def set_evaluation(self, eval_steps: Optional[int] = None, objective=None, patience: Optional[int] = None):
        """Evaluate every task with a dev reader each ``eval_steps``; keep the best by ``objective``."""
        self.eval_steps, self.objective, self.patience = eval_steps, objective, patience

    # ------------------------------------------------------------------ weights
    def load_pretrain(self, model_path: str, convert: bool = False):
        self._ensure_built()
        return self.backbone.load_pretrained_weights(model_path, strict=False)

    def _inference_pair(self, t: Trainer):
        return (t.pred_backbone or self.backbone or t.backbone), (t.pred_head or t.head)

    def load_ckpt(self, model_path: str) -> None:
        """Load a checkpoint / saved model: encoder and head weights, and training state if present."""
        import paddle

        from paddlepalm.backbone.weights import read_checkpoint
        from paddlepalm.model import BACKBONE_DIR, HEADS_FILE

        backbone_dir = os.path.join(model_path, BACKBONE_DIR)
        if not os.path.isdir(backbone_dir):
            raise CheckpointError("%s: not a paddlepalm checkpoint (no %s/ folder)" % (model_path, BACKBONE_DIR))
        _, state, report = read_checkpoint(backbone_dir)
        from paddlepalm.backbone.weights import load_state_into

        backbones = {id(b): b for b in [self.backbone] + [t.pred_backbone for t in self.trainers] if b is not None}
        for b in backbones.values():
            load_state_into(b, state, report)
        heads = paddle.load(os.path.join(model_path, HEADS_FILE))
        for t in self.trainers:
            for head in {id(h): h for h in (t.head, t.pred_head) if h is not None}.values():
                prefix = t.head_owner + "."
                sub = {k[len(prefix):]: v for k, v in heads.items() if k.startswith(prefix)}
                missing = [k for k in head.state_dict() if k not in sub]
                if missing:
                    raise CheckpointError("%s: no weights for head of task %r: %s"
                                          % (os.path.join(model_path, HEADS_FILE), t.name, ", ".join(missing)))
                head.set_state_dict(sub)
        state_file = os.path.join(model_path, ckpt.TRAINER_STATE)
        if os.path.isfile(state_file) and self.sampler is not None:
            self._restore_training_state(model_path)

    # ------------------------------------------------------------------ training
    def _build_optimizer(self):
        if self.optimizer_spec is None:
            from paddlepalm.optimizer import AdamW

            self.optimizer_spec = AdamW()
            logger.info("no optimizer given: using AdamW(lr=5e-5, weight_decay=0.01)")
        steps = -(-self.sampler.total_steps // self.accumulate_steps)
        self.optimizer = self.optimizer_spec.build(self.named_parameters(),
                                                   self.backbone.config.num_hidden_layers, steps,
                                                   self.weight_decay)

    def _batches(self):
        if self._iterators is None:
            self._iterators = [t.reader.batcher.iterate(None) for t in self.trainers]
        return self._iterators

    def _amp_context(self):
        import contextlib

        import paddle

        if not self.amp:
            return contextlib.nullcontext()
        return paddle.amp.auto_cast(enable=True, dtype="bfloat16" if self.amp == "bf16" else "float16", level="O1")

    def train_one_step(self, batch, task_id: int):
        """Forward + backward on one batch of task ``task_id`` (no optimizer step). Returns (outputs, id)."""
        from paddlepalm.forward import run_task, to_tensors

        t = self.trainers[task_id]
        self.backbone.train()
        t.head.train()
        with self._amp_context():
            outputs = run_task(self.backbone, t.head, to_tensors(batch))
        loss = outputs["loss"] * (t.loss_weight / self.accumulate_steps * self._shard_weight)
        if self._scaler is not None:
            self._scaler.scale(loss).backward()
        else:
            loss.backward()
        return outputs, task_id

    def _optimizer_step(self):
        if _dist.world_size() > 1:  # average the gradients over the data-parallel ranks
            _dist.allreduce_gradients(p for _, p in self.named_parameters())
        if self._scaler is not None:
            self._scaler.step(self.optimizer)
            self._scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.clear_grad(set_to_zero=False)  # heads not sampled get no update at all
        self.optimizer_spec.scheduler.step()

    def _setup_amp(self, amp: Optional[str]):
        import paddle

        if amp in (None, False, "", "none", "fp32"):
            self.amp = None
            return
        if amp not in ("fp16", "bf16"):
            raise ValueError("amp must be None, 'fp16' or 'bf16', got %r" % amp)
        if not paddle.is_compiled_with_cuda() or paddle.device.get_device().startswith("cpu"):
            logger.warning("AMP (%s) needs a GPU; this run is on CPU, so it trains in fp32", amp)
            self.amp = None
            return
        self.amp = amp
        self._scaler = paddle.amp.GradScaler(init_loss_scaling=2.0 ** 15) if amp == "fp16" else None

    def train(self, print_steps: int = 5, max_steps: Optional[int] = None, accumulate_steps: int = 1,
              amp: Optional[str] = None, progress: Optional[bool] = None, resume: Optional[str] = None,
              stop_after: Optional[int] = None) -> Dict[str, Any]:
        """Run the training loop. Returns a summary (steps, per-task steps, last metrics, best score).

        ``resume``: a checkpoint dir, or 'latest' for the newest under the saver's path.
        ``stop_after``: stop (without the final save) after this many steps in this call -- for
        tests and time-boxed runs.
        """
        import paddle

        if self.sampler is None:
            raise RuntimeError("call fit_readers_with_mixratio(...) (or Trainer.fit_reader) before train()")
        self._ensure_built()
        _dist.init()  # joins the process group under paddle.distributed.launch
        self.accumulate_steps = max(1, int(accumulate_steps))
        if max_steps:
            self.sampler.total_steps = int(max_steps)
        self._setup_amp(amp)
        if self.optimizer is None:
            self._build_optimizer()
        if resume:
            path = ckpt.latest_checkpoint(self.save_path) if resume == "latest" else resume
            if path:
                self.load_ckpt(path)
                logger.info("resumed from %s at step %d", path, self.global_step)
        for t in self.trainers:
            t.reader.register_with(self.backbone)
        _dist.start_training(self)
        logger.info("training plan:\n%s", self.sampler.format_plan())
        if not logger.isEnabledFor(logging.INFO) and _dist.is_main_process():
            print("training plan:\n" + self.sampler.format_plan())
        iterators = self._batches()
        total = self.sampler.total_steps
        bar = self._progress_bar(progress, total)
        pending = []
        start, last_print = time.time(), time.time()
        steps_this_call = 0
        stopped_early = False
        while self.global_step < total:
            paddle.seed(_dist.step_seed(self.seed * 1000003 + self.global_step))  # dropout repeats on resume
            task_id = self.sampler.next()
            batch, self._shard_weight = _dist.shard_batch(next(iterators[task_id]))
            outputs, _ = self.train_one_step(batch, task_id)
            loss = outputs["loss"].detach()
            pending.append((task_id, loss if self._shard_weight == 1.0 else loss * self._shard_weight))
            self.global_step += 1
            steps_this_call += 1
            if self.global_step % self.accumulate_steps == 0 or self.global_step == total:
                self._optimizer_step()
            if print_steps and (self.global_step % print_steps == 0 or self.global_step == total):
                losses = self._flush_losses(pending)
                speed = print_steps / max(1e-9, time.time() - last_print)
                last_print = time.time()
                main = self.trainers[self.sampler.main]
                _dist.is_main_process() and print("step %d/%d (epoch %d), loss: %.3f, speed: %.2f steps/s" % (
                    self.global_step, total, main.reader.batcher.epoch,
                    float(np.mean([v for v in losses.values()])) if losses else float("nan"), speed))
                self._log({"step": self.global_step, "loss": losses, "lr": self.optimizer.get_lr(),
                           "task_steps": dict(zip([t.name for t in self.trainers], self.sampler.counts)),
                           "time": time.time() - start})
                if bar is not None:
                    bar.set_postfix({**{k: "%.3f" % v for k, v in losses.items()},
                                     "steps": "/".join(str(c) for c in self.sampler.counts)})
            if bar is not None:
                bar.update(1)
            if self.eval_steps and self.global_step % self.eval_steps == 0:
                if self._evaluate_and_track():
                    stopped_early = True
                    break
            if _dist.world_size() > 1 and self.global_step % _dist.SYNC_CHECK_STEPS == 0:
                _dist.check_in_sync(self)
            if self.save_path and self.save_steps and self.global_step % self.save_steps == 0:
                self.save_checkpoint()
            if stop_after is not None and steps_this_call >= stop_after:
                break
        if bar is not None:
            bar.close()
        self._shard_weight = 1.0  # a later direct train_one_step call uses its whole batch
        finished = self.global_step >= total or stopped_early
        if finished and self.eval_steps and self.global_step % self.eval_steps != 0 and not stopped_early:
            self._evaluate_and_track()
        if finished and self.save_path and _dist.broadcast_object(not os.path.isdir(
                os.path.join(self.save_path, "ckpt.step%d" % self.global_step))):  # rank 0 decides
            self.save_checkpoint()
        summary = {"steps": self.global_step, "task_steps": dict(zip([t.name for t in self.trainers],
                                                                     self.sampler.counts)),
                   "wall_seconds": time.time() - start, "best_score": self.best_score,
                   "stopped_early": stopped_early,
                   "last_eval": self.history[-1]["eval"] if self.history else None}
        return summary

    def _progress_bar(self, progress, total):
        if progress is None:
            progress = sys.stderr.isatty()
        if not _dist.is_main_process():
            return None
        if not progress:
            return None
        from tqdm import tqdm

        return tqdm(total=total, initial=self.global_step, desc="train", dynamic_ncols=True)

    def _flush_losses(self, pending) -> Dict[str, float]:
        """Turn the step losses gathered since the last print into floats (one sync per print)."""
        sums: Dict[str, List[float]] = {}
        for task_id, loss in _dist.average_step_losses(pending):
            sums.setdefault(self.trainers[task_id].name, []).append(float(loss))
        pending.clear()
        return {k: float(np.mean(v)) for k, v in sums.items()}

    def _log(self, row: Dict[str, Any]) -> None:
        if "eval" in row:
            self.history.append(row)
        if not _dist.is_main_process():
            return
        path = self.log_path or (os.path.join(self.save_path, "metrics.jsonl") if self.save_path else None)
        if not path:
            return
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, default=float) + "\n")
        self._log_visualdl(row, os.path.dirname(os.path.abspath(path)))

    def _log_visualdl(self, row: Dict[str, Any], log_dir: str) -> None:
        """Mirror scalars to VisualDL when it is installed (``visualdl --logdir <save_path>/vdl``)."""
        if self._vdl is None:
            try:
                from visualdl import LogWriter
            except ImportError:
                self._vdl = False
                return
            self._vdl = LogWriter(logdir=os.path.join(log_dir, "vdl"))
        if self._vdl is False:
            return
        for task, value in (row.get("loss") or {}).items():
            self._vdl.add_scalar("loss/" + task, value, row["step"])
        for task, metrics in (row.get("eval") or {}).items():
            for name, value in metrics.items():
                if isinstance(value, (int, float)):
                    self._vdl.add_scalar("eval/%s/%s" % (task, name), value, row["step"])

    # ------------------------------------------------------------------ evaluation & prediction
    def evaluate(self, output_dir: Optional[str] = None) -> Dict[str, Dict[str, float]]:
        """Every task with a dev reader -> its head's metrics."""
        results = {}
        for t in self.trainers:
            if t.dev_reader is not None:
                out = os.path.join(output_dir, t.name) if output_dir else None
                results[t.name] = self.predict_task(t, t.dev_reader, out)
        return results

    def _evaluate_and_track(self) -> bool:
        """Evaluate, log, keep the best model; True when early stopping triggers."""
        metrics = self.evaluate()
        if not metrics:
            return False
        score = _objective_score(self.objective, metrics) if self.objective else None
        self._log({"step": self.global_step, "eval": metrics, "score": score})
        logger.info("eval at step %d: %s", self.global_step, json.dumps(metrics))
        _dist.is_main_process() and print("eval step %d: %s" % (self.global_step, ", ".join(
            "%s.%s=%.4f" % (task, k, v) for task, m in metrics.items() for k, v in m.items())))
        if score is None:
            return False
        if self.best_score is None or score > self.best_score:
            self.best_score, self.bad_evals = score, 0
            if self.save_path:
                self.save(os.path.join(self.save_path, "best"))
            return False
        self.bad_evals += 1
        return self.patience is not None and self.bad_evals >= self.patience

    def predict_task(self, t: Trainer, reader, output_dir: Optional[str] = None,
                     print_steps: int = 1000) -> Dict[str, Any]:
        import paddle

        from paddlepalm.forward import outputs_to_numpy, run_task, to_tensors

        if reader is None:
            raise ValueError("task %r has no reader to predict; call fit_reader(reader, 'predict')" % t.name)
        backbone, head = self._inference_pair(t)
        if backbone is None or head is None:
            raise RuntimeError("task %r: build_forward/build_predict_forward first" % t.name)
        was_training = backbone.training
        backbone.eval()
        head.eval()
        records = []
        with paddle.no_grad():
            batches = _dist.shard_batches(reader.iterator(num_epochs=1), reader.steps_per_epoch)
            for i, batch in enumerate(batches, 1):  # data parallel: this rank's share
                out = run_task(backbone, head, to_tensors(batch))
                records += head.batch_postprocess(outputs_to_numpy(out), batch)
                if print_steps and i % print_steps == 0 and _dist.is_main_process():
                    print("predict %s: %d batches" % (t.name, i))
        if was_training:
            backbone.train()
        records = _dist.gather_records(records)  # every rank computes the same metrics
        return head.epoch_postprocess(records, reader, output_dir if _dist.is_main_process() else None)

    def predict(self, output_dir: Optional[str] = None, print_steps: int = 1000) -> Dict[str, Dict[str, Any]]:
        """Predict every task that has a predict reader; files under ``<output_dir>/<task>/``."""
        return {t.name: self.predict_task(t, t.predict_reader, os.path.join(output_dir, t.name) if output_dir else None,
                                          print_steps)
                for t in self.trainers if t.predict_reader is not None}

    def build_predict_forward(self):
        """PALM HEAD API: every trainer must have called its own build_predict_forward."""
        missing = [t.name for t in self.trainers if t.pred_head is None and t.head is None]
        if missing:
            raise RuntimeError("tasks without a head: %s" % ", ".join(missing))
        return self

    def merge_inference_readers(self, readers):
        """PALM HEAD API: readers (list aligned with trainers, or name -> reader) ->
        ``fn(task_name)`` returning that task's predict batches."""
        if not isinstance(readers, dict):
            readers = {t.name: r for t, r in zip(self.trainers, readers)}
        for name, reader in readers.items():
            self.trainers[self.task_index(name)].fit_reader(reader, "predict")
        return lambda task_name: readers[task_name].iterator(num_epochs=1)

    def predict_one_batch(self, task_name: str, batch) -> Dict[str, np.ndarray]:
        import paddle

        from paddlepalm.forward import outputs_to_numpy, run_task, to_tensors

        t = self.trainers[self.task_index(task_name)]
        backbone, head = self._inference_pair(t)
        backbone.eval()
        head.eval()
        with paddle.no_grad():
            return outputs_to_numpy(run_task(backbone, head, to_tensors(batch)))

    # ------------------------------------------------------------------ saving
    def _tokenizer(self):
        for t in self.trainers:
            r = t.reader or t.predict_reader or t.dev_reader
            if r is not None:
                return r.tokenizer
        raise CheckpointError("no reader: cannot tell which tokenizer belongs to the model")

    def save(self, path: str) -> str:
        """Write the model artifact (atomically) -- loadable with ``palm.load(path)``."""
        from paddlepalm.model import save_model

        if _dist.is_main_process():  # data parallel: rank 0 writes, the others wait for it
            ckpt.atomic_directory(path, lambda tmp: save_model(tmp, self.backbone, self.trainers,
                                                               self._tokenizer()))
        _dist.barrier()
        return path

    def save_checkpoint(self) -> str:
        """Save ``ckpt.step<N>`` (artifact + optimizer + trainer state); prune to ``keep_last``."""
        import paddle

        from paddlepalm.model import save_model

        kinds = {k.strip() for k in self.save_type.split(",")}
        path = os.path.join(self.save_path, "ckpt.step%d" % self.global_step)

        def write(tmp):
            save_model(tmp, self.backbone, self.trainers, self._tokenizer())
            paddle.save(self._optimizer_state(), os.path.join(tmp, ckpt.OPTIMIZER_STATE))
            ckpt.write_json(os.path.join(tmp, ckpt.TRAINER_STATE), self._training_state())

        if not _dist.is_main_process():  # data parallel: rank 0 writes, the others wait for it
            _dist.barrier()
            return path
        if "ckpt" in kinds:
            ckpt.atomic_directory(path, write)
            ckpt.prune(self.save_path, self.keep_last)
            logger.info("saved %s", path)
        if "predict" in kinds:
            from paddlepalm.export import export_model

            export_model(self, os.path.join(self.save_path, "pred.step%d" % self.global_step))
        _dist.barrier()
        return path

    def _param_renames(self):
        """Paddle's automatic parameter names -> our structured names (stable across processes)."""
        return [(p.name + "_", n + "_") for n, p in self.named_parameters()]

    def _optimizer_state(self) -> Dict[str, Any]:
        renames = sorted(self._param_renames(), key=lambda r: -len(r[0]))
        out = {}
        for key, value in self.optimizer.state_dict().items():
            for auto, structured in renames:
                if key.startswith(auto):
                    key = "param:" + structured + key[len(auto):]
                    break
            out[key] = value
        return out

    def _set_optimizer_state(self, state: Dict[str, Any]) -> None:
        renames = sorted(((s, a) for a, s in self._param_renames()), key=lambda r: -len(r[0]))
        out = {}
        for key, value in state.items():
            if key.startswith("param:"):
                key = key[len("param:"):]
                for structured, auto in renames:
                    if key.startswith(structured):
                        key = auto + key[len(structured):]
                        break
                else:
                    raise CheckpointError("optimizer state for unknown parameter %r" % key)
            out[key] = value
        self.optimizer.set_state_dict(out)

    def _training_state(self) -> Dict[str, Any]:
        return {"global_step": self.global_step, "sampler": self.sampler.state_dict(),
                "readers": {t.name: t.reader.state_dict() for t in self.trainers},
                "scheduler": self.optimizer_spec.scheduler.state_dict(),
                "best_score": self.best_score, "bad_evals": self.bad_evals, "seed": self.seed}

    def _restore_training_state(self, path: str) -> None:
        import paddle

        if self.optimizer is None:
            self._build_optimizer()
        state = ckpt.read_json(os.path.join(path, ckpt.TRAINER_STATE))
        self._set_optimizer_state(paddle.load(os.path.join(path, ckpt.OPTIMIZER_STATE)))
        self.optimizer_spec.scheduler.set_state_dict(state["scheduler"])
        self.global_step = state["global_step"]
        self.sampler.set_state_dict(state["sampler"])
        for t in self.trainers:
            t.reader.set_state_dict(state["readers"][t.name])
        self.best_score, self.bad_evals = state["best_score"], state["bad_evals"]
        self._iterators = None

    # ------------------------------------------------------------------ the plain route
    def fit(self, optimizer=None, num_epochs: float = 1.0, main_task: Optional[str] = None,
            save_path: Optional[str] = None, save_steps: Optional[int] = None, eval_steps: Optional[int] = None,
            objective=None, patience: Optional[int] = None, print_steps: int = 50, max_steps: Optional[int] = None,
            keep_last: Optional[int] = 2, **train_kwargs) -> Dict[str, Any]:
        """One call: readers already attached to the trainers; trains, evaluates, saves.

        ``main_task`` (default: the first non-auxiliary task) runs ``num_epochs`` epochs.
        """
        self.build_forward()
        if optimizer is not None or self.optimizer_spec is None:
            self.build_backward(optimizer)
        main = main_task or self.main_task or next(t.name for t in self.trainers if not t.is_aux)
        self.fit_readers_with_mixratio({t.name: t.reader for t in self.trainers}, main, num_epochs,
                                       max_steps=max_steps)
        if save_path:
            self.set_saver(save_path, save_steps or 10 ** 12, keep_last=keep_last)
        self.set_evaluation(eval_steps, objective, patience)
        return self.train(print_steps=print_steps, **train_kwargs)
