"""``Engine``: runs task specs over one shared encoder -- ``fit``, ``evaluate``, ``predict``, ``save``.

The engine wires specs into a :class:`~paddlepalm.engine.network.MultiTaskNetwork`, a
:class:`~paddlepalm.engine.sampling.Sampler` and a :class:`~paddlepalm.engine.loop.FitLoop` with
the built-in callbacks plus the user's own. PALM 2.x's method names live in
:mod:`paddlepalm.compat` (``MultiHeadTrainer``) on top of this class.
"""
import logging
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

from paddlepalm.engine.args import TrainingArguments
from paddlepalm.engine.callbacks.balancing import BalancingCallback
from paddlepalm.engine.callbacks import (Callback, CallbackList, CheckpointCallback, ConsoleLogger,
                                         EvaluationCallback, JsonlLogger, LogEvery, ProgressBar, VisualDLLogger,
                                         resolve_objective)
from paddlepalm.engine import persistence
from paddlepalm.engine.checkpoints import TRAINER_STATE, latest_checkpoint
from paddlepalm.engine.inference import evaluate_reader, predict_reader
from paddlepalm.engine.loop import FitLoop
from paddlepalm.engine.network import MultiTaskNetwork
from paddlepalm.engine.sampling import Sampler, TaskInfo
from paddlepalm.engine.spec import (TaskSpec, check_unique_names, input_groups, main_task_name,
                                     resolve_shared_heads)
from paddlepalm.engine.strategy import Strategy, default_strategy
from paddlepalm.errors import CheckpointError
from paddlepalm.utils.atomic_dir import atomic_directory

logger = logging.getLogger("paddlepalm")

Metrics = Dict[str, Dict[str, float]]


class Engine:
    """Multi-task training over one shared encoder: ``Engine(tasks, backbone=...)``.

    ``sampling``: 'mix_ratio' (PALM, default), 'temperature' or 'annealed' (see
    :mod:`paddlepalm.engine.sampling`). ``step_mode``: 'sampled' (one task per step, PALM) or
    'joint' (every task -- or ``tasks_per_step`` of them -- each step, one optimizer step).
    Tasks given the same train reader object label the same examples and share one encoder pass
    per batch. ``balancer``: how the losses of a step combine into gradients (default: the sum
    weighted by each task's ``loss_weight``; see :mod:`paddlepalm.balancing`). Deterministic
    given ``seed``. ``strategy``: single process, or data parallel under
    ``paddle.distributed.launch`` (chosen automatically).
    """

    def __init__(self, tasks: Sequence[TaskSpec], backbone=None, main_task: Optional[str] = None,
                 sampling: str = "mix_ratio", temperature: float = 1.0, seed: int = 0,
                 strategy: Optional[Strategy] = None, step_mode: str = "sampled",
                 tasks_per_step: Optional[int] = None, balancer=None, distiller=None):
        self.tasks: List[TaskSpec] = check_unique_names(tasks)
        self.backbone = backbone
        self.main_task = main_task
        self.sampling, self.temperature, self.seed = sampling, temperature, seed
        self.step_mode, self.tasks_per_step = step_mode, tasks_per_step
        self.balancer = _balancer(balancer)
        self.distiller = distiller  # a teacher's loss terms (paddlepalm.distill.Distiller), or None
        self.strategy = strategy or default_strategy()
        self.sampler: Optional[Sampler] = None
        self.optimizer_spec = None
        self.weight_decay: Optional[float] = None
        self.args = TrainingArguments()
        self.log_path: Optional[str] = None  # metrics.jsonl (default: <save_path>/metrics.jsonl)
        self.loop: Optional[FitLoop] = None

    # ------------------------------------------------------------------ wiring
    def task_index(self, name: str) -> int:
        for i, t in enumerate(self.tasks):
            if t.name == name:
                return i
        raise KeyError("unknown task %r; tasks: %s" % (name, ", ".join(t.name for t in self.tasks)))

    def task(self, name: str) -> TaskSpec:
        return self.tasks[self.task_index(name)]

    def bind(self) -> MultiTaskNetwork:
        """Check the specs (a backbone, a head per task, shared heads resolved); the network."""
        if self.backbone is None:
            raise ValueError("the engine has no backbone: pass backbone=... ")
        resolve_shared_heads(self.tasks)
        for t in self.tasks:
            t.head.attach_backbone(self.backbone)
        return MultiTaskNetwork(self.backbone, self.tasks, self.extra_parameters())

    def _bind_balancer(self) -> None:
        """The balancer learns the task names (fixed weights default to each task's loss_weight)
        before the optimizer is built."""
        self.balancer = b = _balancer(self.balancer)
        if b is None:
            return
        if getattr(b, "name", None) == "fixed" and not b.weights:
            b.weights = {t.name: t.loss_weight for t in self.tasks}
        b.bind([t.name for t in self.tasks])

    def extra_parameters(self):
        """Parameters trained with the model but saved with the run's state, not in the model:
        the balancer's (``balancing.*``) and the distiller's projections (``distill.*``)."""
        extra = []
        for prefix, owner in (("balancing", self.balancer), ("distill", self.distiller)):
            named = getattr(owner, "named_parameters", None)
            if named is not None:
                extra += [(n if n.startswith(prefix + ".") else "%s.%s" % (prefix, n), p) for n, p in named()]
            elif owner is not None:
                extra += [("%s.%d" % (prefix, i), p) for i, p in enumerate(owner.parameters())]
        return extra

    @property
    def network(self) -> MultiTaskNetwork:
        return self.bind()

    def named_parameters(self):
        """(structured name, parameter): ``backbone.*`` then ``heads.<owner>.*`` (shared heads once),
        then the balancer's / distiller's; the planned run's network when there is one."""
        return (self.loop.network if self.loop is not None else self.bind()).named_parameters()

    def plan(self, num_epochs: float, main_task: Optional[str] = None, max_steps: Optional[int] = None) -> Sampler:
        """Check the train readers and make the sampler: the main task runs ``num_epochs`` epochs."""
        main = main_task_name(self.tasks, main_task or self.main_task)
        self.main_task = main
        for t in self.tasks:
            if t.reader is None:
                raise ValueError("task %r has no train reader" % t.name)
            if t.reader._batcher is None:
                raise ValueError("task %r: its reader has no data; call load_data first" % t.name)
        units = input_groups(self.tasks)
        infos = []
        for unit in units:
            members = [self.tasks[i] for i in unit]
            r = members[0].reader
            infos.append(TaskInfo("+".join(t.name for t in members), r.num_examples, r.batch_size, r.steps_per_epoch,
                                  max(t.mix_ratio for t in members), any(t.name == main for t in members)))
        self.sampler = Sampler(infos, self.sampling, num_epochs, self.temperature, self.seed, max_steps,
                               self.step_mode, self.tasks_per_step)
        self._bind_balancer()
        self.loop = FitLoop(self, self.bind(), self.tasks, self.sampler, self.optimizer_spec, self.args,
                            self.strategy, CallbackList(), self.seed, self.weight_decay, units, self.balancer,
                            self.distiller)
        return self.sampler

    # ------------------------------------------------------------------ training
    def fit(self, optimizer=None, args: Optional[TrainingArguments] = None,
            callbacks: Iterable[Union[Callback, type]] = (), weight_decay: Optional[float] = None,
            **overrides: Any) -> Dict[str, Any]:
        """Train the tasks (readers attached to the specs); evaluate, keep the best, save.

        ``args``: a :class:`TrainingArguments` (defaults for everything); keyword ``overrides``
        change single fields (``num_epochs=2, eval_steps=100, save_path='out'``...). ``callbacks``
        run after the built-in ones. Returns a summary (steps, per-task steps, best score, last
        evaluation).
        """
        args = (args or TrainingArguments()).updated(**overrides)
        if optimizer is not None or self.optimizer_spec is None:
            self.optimizer_spec = optimizer
        if weight_decay is not None:
            self.weight_decay = weight_decay
        self.bind()
        self.plan(args.num_epochs, args.main_task, args.max_steps)
        return self.run(args, callbacks)

    def default_callbacks(self, args: TrainingArguments) -> List[Callback]:
        """The built-in callbacks of a run with ``args``, in order."""
        log_path = args.log_path or self.log_path or (os.path.join(args.save_path, "metrics.jsonl")
                                                      if args.save_path else None)
        objective = resolve_objective(args.objective, self.tasks, self.main_task or main_task_name(self.tasks))
        callbacks: List[Callback] = [LogEvery(args.print_steps), ProgressBar(args.progress), ConsoleLogger(),
                                     JsonlLogger(log_path),
                                     VisualDLLogger(os.path.join(os.path.dirname(os.path.abspath(log_path)), "vdl")
                                                    if log_path else None),
                                     EvaluationCallback(args.eval_steps, objective, args.patience, args.save_path)]
        if args.save_path:
            callbacks.append(CheckpointCallback(args.save_path, args.save_steps))
        if self.balancer is not None:
            callbacks.append(BalancingCallback(self.balancer))
        return callbacks

    def run(self, args: TrainingArguments, callbacks: Iterable[Union[Callback, type]] = ()) -> Dict[str, Any]:
        """Run (or continue) training with ``args``; the planned sampler must exist (:meth:`plan`)."""
        if self.loop is None:
            raise RuntimeError("no training plan: call fit(...) (or PALM's fit_readers_with_mixratio)")
        network = self.bind()
        self.strategy.setup()
        if self.balancer is not None:  # data parallel: the balancer's collectives (None in one process)
            self.balancer.set_communicator(self.strategy.all_reduce_mean())
        self.args = args
        loop = self.loop
        loop.callbacks = CallbackList(self.default_callbacks(args) + list(callbacks))
        loop.network, loop.optimizer_spec, loop.weight_decay = network, self.optimizer_spec, self.weight_decay
        loop.configure(args)
        if loop.optimizer is None:
            loop.build_optimizer()
        self._resume(args)
        for t in self.tasks:
            t.reader.register_with(self.backbone)
        self.strategy.start(loop)
        from paddlepalm._env import configure_run_threads

        loop.threads = configure_run_threads(args.num_threads)  # logged, and in the run's summary
        return loop.run()

    def _resume(self, args: TrainingArguments) -> None:
        if not args.resume:
            return
        path = latest_checkpoint(args.save_path) if args.resume == "latest" else args.resume
        if not path:
            if args.resume_strict:
                raise CheckpointError("%s: resume='latest' but there is no checkpoint to resume" % args.save_path)
            logger.warning("resume='latest': no checkpoint under %s, training from scratch", args.save_path)
            return
        self.load_weights(path)
        if os.path.isfile(os.path.join(path, TRAINER_STATE)):
            self.restore_training_state(path)
        logger.info("resumed from %s at step %d", path, self.loop.state.global_step)

    # ------------------------------------------------------------------ evaluation & prediction
    def inference_modules(self, task: TaskSpec):
        """The (backbone, head) that evaluate/predict ``task``."""
        return self.backbone, task.head

    def evaluate(self, readers: Optional[Dict[str, Any]] = None, output_dir: Optional[str] = None) -> Metrics:
        """Metrics of every task with a dev reader (or of ``readers``: task name -> reader).

        With ``output_dir``, each task's predictions go to ``<output_dir>/<task>/``.
        """
        readers = readers if readers is not None else {t.name: t.dev_reader for t in self.tasks
                                                       if t.dev_reader is not None}
        results = {}
        for name, reader in readers.items():
            t = self.task(name)
            backbone, head = self.inference_modules(t)
            out = os.path.join(output_dir, name) if output_dir else None
            results[name] = evaluate_reader(backbone, head, reader, self.strategy, out, name=name)
        return results

    def predict(self, task: str, data, batch_size: int = 32) -> List[Dict[str, Any]]:
        """Predictions of ``task`` for a loaded reader, or raw inputs (texts, pairs, example dicts)."""
        t = self.task(task)
        reader = data
        if not hasattr(data, "iterator"):
            template = t.predict_reader or t.dev_reader or t.reader
            reader = template.clone("predict")
            reader.load_examples(reader.make_examples(list(data)), batch_size)
        backbone, head = self.inference_modules(t)
        return predict_reader(backbone, head, reader)

    # ------------------------------------------------------------------ saving and loading
    @property
    def tokenizer(self):
        for t in self.tasks:
            r = t.reader or t.predict_reader or t.dev_reader
            if r is not None:
                return r.tokenizer
        raise CheckpointError("no reader: cannot tell which tokenizer belongs to the model")

    def save(self, path: str) -> str:
        """Write the model (atomically) -- loadable with ``palm.load(path)``."""
        from paddlepalm.artifact import save_model

        if self.strategy.is_main:  # data parallel: rank 0 writes, the others wait for it
            atomic_directory(path, lambda tmp: save_model(tmp, self.backbone, self.tasks, self.tokenizer))
        self.strategy.barrier()
        return path

    def save_checkpoint(self) -> str:
        """Save ``ckpt.step<N>`` (model + optimizer + training state); keep the newest ``keep_last``."""
        return persistence.save_checkpoint(self)

    def weight_targets(self):
        """``(backbones, {task: heads})`` that :meth:`load_weights` fills."""
        return [self.backbone], {t.name: [t.head] for t in self.tasks if t.head is not None}

    def load_weights(self, path: str) -> None:
        """Load a saved model's / checkpoint's encoder and head weights into this engine."""
        persistence.load_weights(self, path)

    def restore_training_state(self, path: str) -> None:
        """Optimizer, schedule, sampler, reader positions, train state and callbacks from ``path``."""
        persistence.restore_training_state(self, path)

    # ------------------------------------------------------------------ state
    @property
    def state(self):
        return self.loop.state if self.loop is not None else None

    @property
    def global_step(self) -> int:
        return self.loop.state.global_step if self.loop is not None else 0

    @property
    def history(self) -> List[Dict[str, Any]]:
        return self.loop.state.history if self.loop is not None else []

    @property
    def best_score(self) -> Optional[float]:
        return self.loop.state.best_score if self.loop is not None else None


def _balancer(balancer):
    """A balancer object from a registered name (``'pcgrad'``), else ``balancer`` itself."""
    if not isinstance(balancer, str):
        return balancer
    import paddlepalm.balancing  # noqa: F401  (registers the built-ins)
    from paddlepalm.registry import BALANCERS

    return BALANCERS.get(balancer)()
