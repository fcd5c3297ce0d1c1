"""Declarative runs: one YAML file -> checked settings -> backbone, readers, heads and trainers.

>>> from paddlepalm.config import load_config, run_train
>>> config = load_config("config.yaml", overrides=["optimizer.lr=3e-5"])
>>> results = run_train(config)          # {task: {metric: value}}

Every key, its default and meaning: ``docs/config.md`` (generated from :mod:`.schema`).
"""
from typing import Optional, Sequence

from paddlepalm.config.build import Run, build_run
from paddlepalm.config.loader import Config, Problem, apply_overrides, load_yaml, parse_yaml
from paddlepalm.config.run import run_evaluate, run_export, run_predict, run_train
from paddlepalm.config.schema import SCHEMA, render_markdown
from paddlepalm.config.validate import check, validate

__all__ = ["load_config", "Config", "Problem", "load_yaml", "parse_yaml", "apply_overrides", "check",
           "validate", "build_run", "Run", "run_train", "run_evaluate", "run_predict", "run_export", "SCHEMA",
           "render_markdown"]


def load_config(path: str, overrides: Optional[Sequence[str]] = None) -> Config:
    """Read ``path``, apply ``KEY=VALUE`` overrides and validate; raises one ConfigError listing
    every problem. The returned config carries the resolved ``settings``."""
    config = apply_overrides(load_yaml(path), overrides or ())
    validate(config)
    return config
