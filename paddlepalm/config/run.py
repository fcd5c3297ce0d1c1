"""What the ``train``, ``evaluate``, ``predict`` and ``export`` commands do, as plain functions.

Each takes a validated :class:`~paddlepalm.config.Config` (see :func:`paddlepalm.config.load_config`),
so scripts, tests and a multi-process launcher can call them without the command line.
"""
import json
import logging
import os
import shutil
import tempfile
from typing import Any, Dict, Optional

import yaml

from paddlepalm.config.build import build_run, resolve_checkpoint
from paddlepalm.config.loader import Config, config_error
from paddlepalm.config.validate import validate

logger = logging.getLogger("paddlepalm")

RESOLVED_CONFIG = "config.resolved.yaml"
RESULTS_FILE = "results.json"

Results = Dict[str, Dict[str, float]]


def _write_json(path: str, value: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, ensure_ascii=False, default=float)
        f.write("\n")
    os.replace(tmp, path)


def _settings(config: Config) -> Dict[str, Any]:
    return config.settings if config.settings is not None else validate(config)


def _check_output_dir(config: Config, output_dir: str, resume: Optional[str]) -> None:
    from paddlepalm.engine import checkpoints as ckpt

    taken = ckpt.latest_checkpoint(output_dir) or (os.path.isdir(os.path.join(output_dir, "best")) or None)
    if taken and not resume:
        raise config_error([config.problem(("output_dir",), "%s already holds a training run; resume it with "
                                           "--resume latest or choose another output_dir" % output_dir)],
                           config.source)


def training_arguments(s: Dict[str, Any], output_dir: str, objective, resume: Optional[str] = None,
                       progress: Optional[bool] = None, resume_strict: bool = False):
    """The validated settings as the engine's :class:`~paddlepalm.engine.TrainingArguments`."""
    from paddlepalm.engine import TrainingArguments

    return TrainingArguments(num_epochs=s["epochs"], max_steps=s["max_steps"], main_task=s["main_task"],
                             accumulate_steps=s["accumulate_steps"], amp=s["amp"], eval_steps=s["eval_steps"],
                             objective=objective, patience=s["patience"], save_path=output_dir,
                             save_steps=s["save_steps"], keep_last=s["keep_last"], print_steps=s["print_steps"],
                             progress=progress, resume=resume, resume_strict=resume_strict,
                             diagnostics_steps=s["diagnostics_steps"], num_threads=s.get("num_threads"))


def _attach_distillation(config: Config, s: Dict[str, Any], engine):
    from paddlepalm.distill import attach, build_distillation
    from paddlepalm.errors import ConfigError

    try:
        dist = build_distillation(s["distill"], list(s["tasks"]), readers={t.name: t.reader for t in engine.tasks})
    except ConfigError as e:  # 'distill.key: message' -> file:line: distill.key: message
        key, _, message = str(e).partition(": ")
        raise config_error([config.problem(tuple(key.split(".")), message)], config.source) from None
    return attach(engine, dist)


def run_train(config: Config, resume: Optional[str] = None, progress: Optional[bool] = None,
              resume_strict: bool = False) -> Results:
    """Train as configured; write the output folder; return the final evaluation.

    ``output_dir`` receives ``config.resolved.yaml``, ``metrics.jsonl``, ``ckpt.step<N>/``, ``best/``
    and ``results.json`` (``{task: {metric: value}}`` of the final evaluation, empty without dev
    files; a distillation run adds ``teacher`` and ``retention``). ``resume``: a checkpoint
    folder, or ``'latest'``.
    """
    s = _settings(config)
    output_dir = os.path.abspath(s["output_dir"])
    _check_output_dir(config, output_dir, resume)
    run = build_run(config, "train")
    from paddlepalm import distributed

    if distributed.is_main_process():  # data parallel: rank 0 writes the output folder
        os.makedirs(output_dir, exist_ok=True)
        with open(os.path.join(output_dir, RESOLVED_CONFIG), "w", encoding="utf-8") as f:
            yaml.safe_dump(run.settings, f, sort_keys=False, allow_unicode=True)
    engine = run.engine
    callbacks = list(run.callbacks)
    distillation = None
    if s.get("distill"):  # a distillation run: the engine trains the student, with the teacher's losses
        distillation = _attach_distillation(config, s, engine)
        callbacks.insert(0, distillation)
    engine.fit(optimizer=run.optimizer, args=training_arguments(s, output_dir, run.objective, resume, progress,
                                                                       resume_strict),
               callbacks=callbacks)
    last = engine.history[-1] if engine.history else None
    results = last["eval"] if last and last["step"] == engine.global_step else engine.evaluate()
    written = dict(results)
    if distillation is not None and results:
        written.update(_teacher_blocks(engine, distillation.distiller.teacher, results, run.objective))
    if distributed.is_main_process():
        _write_json(os.path.join(output_dir, RESULTS_FILE), written)
    logger.info("results: %s", json.dumps(written))
    return results


def _teacher_blocks(engine, teacher, results: Results, objective) -> Dict[str, Any]:
    """``teacher`` (its metrics on the student's dev readers: same batches, same tokenizer) and
    ``retention`` (student / teacher of the objective's metric, else each head's first metric)."""
    from paddlepalm.engine.inference import evaluate_reader
    from paddlepalm.utils.results import retention

    scored = {}
    for name in results:
        task = engine.task(name)
        if name in teacher.tasks and task.dev_reader is not None:
            scored[name] = evaluate_reader(teacher.backbone(name), teacher.head(name), task.dev_reader,
                                           engine.strategy, None, name="%s (teacher)" % name)
    named = [objective] if isinstance(objective, str) else list(objective or ())
    metric = {k.partition(".")[0]: k.partition(".")[2] for k in named}
    for name in scored:
        names = getattr(engine.task(name).head, "metric_names", ()) or list(results[name])
        metric.setdefault(name, names[0])
    return {"teacher": scored, "retention": retention(results, scored, metric)}


def _loaded(config: Config, checkpoint: str, mode: str, split: str = "dev"):
    path = resolve_checkpoint(checkpoint)
    run = build_run(config, mode, checkpoint=path, split=split)
    run.engine.load_ckpt(path)
    return run


def run_evaluate(config: Config, checkpoint: str, split: str = "dev", output_dir: Optional[str] = None) -> Results:
    """Metrics of a trained model on every task's ``split`` file (``dev`` or ``test``).

    With ``output_dir``, each task's predictions go to ``<output_dir>/<task>/``.
    """
    _settings(config)
    run = _loaded(config, checkpoint, "evaluate", split)
    if not any(t.dev_reader is not None for t in run.trainers):
        raise config_error([config.problem(("tasks",), "no task has a %r file to evaluate" % split)], config.source)
    return run.engine.evaluate(output_dir)


def run_predict(config: Config, checkpoint: str, input_file: str, output_file: str,
                task: Optional[str] = None) -> Dict[str, float]:
    """Predict ``input_file`` (read like the task's files; with ``input_of``, like the files of the
    task it reads from) with ``task`` (default: the main task).

    Writes the head's predictions (JSON lines) to ``output_file``; returns metrics when the input
    has gold labels, else ``{}``.
    """
    s = _settings(config)
    name = task or s["main_task"]
    if name not in s["tasks"]:
        raise config_error([config.problem(("tasks",), "no task %r; tasks: %s" % (name, ", ".join(s["tasks"])))],
                           config.source)
    run = _loaded(config, checkpoint, "predict")
    trainer = run.trainer(name)
    from paddlepalm.config.inputs import source_of

    t = s["tasks"][source_of(s["tasks"], name)]  # a task with input_of reads files like its source's
    reader = trainer.predict_reader.load_data(input_file, t["batch_size"], file_format=t["file_format"])
    with tempfile.TemporaryDirectory() as tmp:
        metrics = run.engine.predict_task(trainer, reader, tmp)
        os.makedirs(os.path.dirname(os.path.abspath(output_file)), exist_ok=True)
        shutil.copyfile(os.path.join(tmp, "predictions.json"), output_file)
    return metrics


def run_export(config: Config, checkpoint: str, out_dir: str) -> str:
    """Export every task of a trained model for serving (see :mod:`paddlepalm.export`)."""
    from paddlepalm.export import export_model

    _settings(config)
    run = _loaded(config, checkpoint, "export")
    return export_model(run.engine, out_dir)
