"""The config-driven sub-commands: ``train``, ``evaluate``, ``predict``, ``export`` and ``check``.

Each reads CONFIG (plus ``--set KEY=VALUE`` overrides), validates it and calls the matching
function of :mod:`paddlepalm.config.run`.
"""
import json
import logging
import sys

from paddlepalm.cli import arguments, command

SET_HELP = ("override config values: dotted keys, YAML values, e.g. --set optimizer.lr=3e-5 "
            "tasks.slot.mix_ratio=0.5")


def _config_args(p) -> None:
    p.add_argument("config", metavar="CONFIG", help="the run's YAML config (see docs/config.md)")
    p.add_argument("--set", dest="overrides", metavar="KEY=VALUE", nargs="+", action="extend", default=[],
                   help=SET_HELP)


def _ckpt_arg(p) -> None:
    p.add_argument("--ckpt", required=True, metavar="DIR",
                   help="a saved model or checkpoint folder, or a training output_dir (its best/, else "
                        "its latest checkpoint)")


def _load(args):
    from paddlepalm.config import load_config

    if not logging.getLogger().handlers and not logging.getLogger("paddlepalm").handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return load_config(args.config, args.overrides)


def _print_json(value) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=float))


# ----------------------------------------------------------------------------- train
@arguments("train")
def _train_args(p) -> None:
    _config_args(p)
    p.add_argument("--resume", metavar="DIR", help="continue from a checkpoint folder, or 'latest' (the newest "
                                                   "in output_dir; none there: a warning, then a fresh start)")
    p.add_argument("--resume-strict", action="store_true",
                   help="with --resume latest: an error instead of a fresh start when there is no checkpoint")
    p.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="train data-parallel in N processes on this machine: re-runs this command under "
                        "'python -m paddle.distributed.launch --nproc_per_node N' (one GPU each with CUDA, "
                        "else CPU processes with gloo); batch_size stays the global batch. Worker logs go to "
                        "<output_dir>/launch_logs (see docs/distributed.md)")


@command("train", help="train the tasks of a YAML config; writes output_dir (checkpoints, best/, results.json)")
def _train(args) -> int:
    from paddlepalm import distributed
    from paddlepalm.config import run_train

    if args.nproc > 1 and not distributed.is_launched():
        return distributed.relaunch_cli(args._argv, args.nproc, _load(args).settings["output_dir"])
    distributed.init()  # under the launcher: join the process group before building the model
    results = run_train(_load(args), resume=args.resume, resume_strict=args.resume_strict)
    _print_json(results)
    return 0


# ----------------------------------------------------------------------------- distill
@arguments("distill")
def _distill_args(p) -> None:
    _train_args(p)


@command("distill", help="train a small student from a saved teacher: a config with a distill: section "
                         "(docs/distillation.md); writes output_dir like train")
def _distill(args) -> int:
    from paddlepalm.config.loader import config_error

    config = _load(args)
    if not config.settings.get("distill"):
        raise config_error([config.problem(("distill",), "missing: 'paddlepalm distill' needs a distill: section "
                                                         "(teacher, student); see docs/distillation.md")],
                           config.source)
    return _train(args)


# ----------------------------------------------------------------------------- evaluate
@arguments("evaluate")
def _evaluate_args(p) -> None:
    _config_args(p)
    _ckpt_arg(p)
    p.add_argument("--split", choices=("dev", "test"), default="dev", help="which files to evaluate (default: dev)")
    p.add_argument("--output", metavar="FILE", help="also write the metrics as JSON to FILE")
    p.add_argument("--predictions", metavar="DIR", help="write each task's predictions under DIR/<task>/")


@command("evaluate", help="evaluate a trained model on every task's dev (or test) file")
def _evaluate(args) -> int:
    from paddlepalm.config import run_evaluate

    results = run_evaluate(_load(args), args.ckpt, args.split, args.predictions)
    _print_json(results)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2, default=float)
    return 0


# ----------------------------------------------------------------------------- predict
@arguments("predict")
def _predict_args(p) -> None:
    _config_args(p)
    _ckpt_arg(p)
    p.add_argument("--input", required=True, metavar="FILE", help="file to predict, in the task's format")
    p.add_argument("--output", required=True, metavar="FILE", help="where to write the predictions (JSON lines)")
    p.add_argument("--task", metavar="NAME", help="which task predicts (default: main_task)")


@command("predict", help="predict a file with one task of a trained model")
def _predict(args) -> int:
    from paddlepalm.config import run_predict

    metrics = run_predict(_load(args), args.ckpt, args.input, args.output, args.task)
    print("predictions written to %s" % args.output, file=sys.stderr)
    if metrics:
        _print_json(metrics)
    return 0


# ----------------------------------------------------------------------------- export
@arguments("export")
def _export_args(p) -> None:
    p.add_argument("config", metavar="MODEL_DIR|CONFIG",
                   help="a saved model folder (palm.load's), or the run's YAML config with --ckpt (Paddle "
                        "programs only, the older layout of paddlepalm.export.export_model)")
    p.add_argument("--set", dest="overrides", metavar="KEY=VALUE", nargs="+", action="extend", default=[],
                   help=SET_HELP)
    p.add_argument("--ckpt", metavar="DIR", help="with CONFIG: the checkpoint to export")
    p.add_argument("--out", metavar="DIR", help="output folder (default for MODEL_DIR: MODEL_DIR/export)")
    p.add_argument("--format", dest="formats", action="append", choices=("paddle", "onnx"),
                   help="onnx (also writes the Paddle program it is converted from) or paddle; default onnx")
    p.add_argument("--tasks", help="comma-separated tasks to export (default: all)")
    p.add_argument("--int8", action="store_true", help="also write a dynamically int8-quantized ONNX model")
    from paddlepalm.deploy.quantize import INT8_PADDING, INT8_WEIGHTS

    p.add_argument("--int8-weights", choices=INT8_WEIGHTS, default="per_tensor",
                   help="int8 weight scales: one per matrix (default) or one per output column")
    p.add_argument("--int8-padding", choices=INT8_PADDING, default="zeroed",
                   help="zero padding rows before each activation is quantized (default: a text's answer then "
                        "does not depend on its batch's padding; costs one Mul per quantized input) or keep them")
    p.add_argument("--dev", metavar="TASK=FILE", nargs="+", action="extend", default=[],
                   help="labelled files scored with the fp32 and the int8 model at export (needs --int8)")
    p.add_argument("--threads", type=int, help="ONNX Runtime threads for the --dev check")


@command("export", help="export a trained model's tasks for serving: ONNX (+ int8) and Paddle inference programs")
def _export(args) -> int:
    import os

    from paddlepalm.errors import ConfigError, PalmError

    if os.path.isfile(args.config):  # the config route (Paddle programs from a checkpoint)
        from paddlepalm.config import run_export

        if not args.ckpt or not args.out:
            raise ConfigError("export CONFIG needs --ckpt DIR and --out DIR (or pass a saved MODEL_DIR)")
        print(run_export(_load(args), args.ckpt, args.out))
        return 0
    from paddlepalm.config.build import resolve_checkpoint
    from paddlepalm.deploy import export

    dev = {}
    for item in args.dev:
        task, sep, path = item.partition("=")
        if not sep or not task or not path:
            raise PalmError("--dev %r: expected TASK=FILE" % item)
        dev[task] = path
    try:
        out = export(resolve_checkpoint(args.config), args.out, formats=args.formats or ["onnx"],
                     tasks=args.tasks.split(",") if args.tasks else None, int8=args.int8, dev_files=dev,
                     threads=args.threads, int8_weights=args.int8_weights, int8_padding=args.int8_padding)
    except (ValueError, FileNotFoundError, ImportError) as e:
        raise PalmError(str(e)) from e
    print(out)
    return 0


# ----------------------------------------------------------------------------- check
@arguments("check")
def _check_args(p) -> None:
    _config_args(p)


@command("check", help="validate a YAML config and print it with every default filled in")
def _check(args) -> int:
    import yaml

    settings = _load(args).settings
    print(yaml.safe_dump(settings, sort_keys=False, allow_unicode=True), end="")
    return 0
