"""The ``paddlepalm`` command line (also ``python -m paddlepalm``).

Each sub-command is a small function registered with :func:`command`; heavy imports happen inside
the command so ``paddlepalm --help`` is instant.
"""
import argparse
import sys
from typing import Callable, Dict, List, Optional

_COMMANDS: Dict[str, Callable] = {}
_BUILDERS: Dict[str, Callable] = {}


def command(name: str, help: str):
    """Register ``fn(args) -> int`` as sub-command ``name``; its ``add_arguments`` builds options."""
    def wrap(fn):
        fn.help = help
        _COMMANDS[name] = fn
        return fn
    return wrap


def arguments(name: str):
    def wrap(fn):
        _BUILDERS[name] = fn
        return fn
    return wrap


# ----------------------------------------------------------------------------- convert
@arguments("convert")
def _convert_args(p: argparse.ArgumentParser):
    p.add_argument("src", metavar="SRC_DIR",
                   help="checkpoint dir in paddlepalm, PaddleNLP, Hugging Face or PALM 1.x layout")
    p.add_argument("dst", metavar="DST_DIR", help="where to write the paddlepalm checkpoint")


@command("convert", help="convert a PaddleNLP / Hugging Face / PALM checkpoint to paddlepalm's layout")
def _convert(args) -> int:
    from paddlepalm.backbone import convert_checkpoint, detect_layout

    layout = detect_layout(args.src)
    convert_checkpoint(args.src, args.dst)
    print("converted %s (%s layout) -> %s" % (args.src, layout, args.dst))
    return 0


# ----------------------------------------------------------------------------- downloader
@arguments("ls")
def _ls_args(p):
    p.add_argument("item", nargs="?", default="all", help="item type, e.g. pretrain (default: all)")
    p.add_argument("--catalog", help="extra catalog YAML file (also $PADDLEPALM_CATALOG)")


@command("ls", help="list downloadable pretrained checkpoints")
def _ls(args) -> int:
    from paddlepalm import downloader

    kwargs = {"catalog": args.catalog} if args.catalog else {}
    downloader.ls(args.item, **kwargs)
    return 0


@arguments("download")
def _download_args(p):
    p.add_argument("item", help="item type, e.g. pretrain")
    p.add_argument("name", help="catalog name, e.g. BERT-en-uncased-base")
    p.add_argument("path", nargs="?", default="./pretrain_models", help="target folder")
    p.add_argument("--catalog", help="extra catalog YAML file (also $PADDLEPALM_CATALOG)")


@command("download", help="download, verify, unpack (and convert) a pretrained checkpoint")
def _download(args) -> int:
    from paddlepalm import downloader

    kwargs = {"catalog": args.catalog} if args.catalog else {}
    path = downloader.download(args.item, args.name, args.path, **kwargs)
    print(path)
    return 0


def _load_extra_commands() -> None:
    """Sub-commands living in other modules register themselves on import."""
    import importlib

    for module in ("paddlepalm.config.commands", "paddlepalm.report", "paddlepalm.deploy.commands"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if not (e.name and module.startswith(e.name)):  # only the optional module itself may be absent
                raise


def build_parser() -> argparse.ArgumentParser:
    from paddlepalm.version import __version__

    _load_extra_commands()
    parser = argparse.ArgumentParser(
        prog="paddlepalm", description="Multi-task fine-tuning of pretrained encoders on PaddlePaddle")
    parser.add_argument("--version", action="version", version="paddlepalm " + __version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, fn in _COMMANDS.items():
        p = sub.add_parser(name, help=fn.help, description=fn.help)
        if name in _BUILDERS:
            _BUILDERS[name](p)
        p.set_defaults(_fn=fn)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    from paddlepalm.errors import PalmError

    parser = build_parser()
    args = parser.parse_args(argv)
    args._argv = list(sys.argv[1:] if argv is None else argv)  # lets 'train --nproc N' re-run itself
    if not getattr(args, "_fn", None):
        parser.print_help()
        return 2
    try:
        return int(args._fn(args) or 0)
    except PalmError as e:
        print("paddlepalm %s: error: %s" % (args.command, e), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
