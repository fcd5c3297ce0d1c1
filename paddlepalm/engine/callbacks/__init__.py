"""Callbacks: the hooks of the fit loop, and the built-in ones that make up a normal run."""
from paddlepalm.engine.callbacks.base import Callback, CallbackList
from paddlepalm.engine.callbacks.checkpointing import CheckpointCallback
from paddlepalm.engine.callbacks.evaluation import EvaluationCallback, objective_score, resolve_objective
from paddlepalm.engine.callbacks.flow import LogEvery
from paddlepalm.engine.callbacks.loggers import JsonlLogger, VisualDLLogger
from paddlepalm.engine.callbacks.progress import ConsoleLogger, ProgressBar

__all__ = ["Callback", "CallbackList", "CheckpointCallback", "ConsoleLogger", "EvaluationCallback",
           "JsonlLogger", "LogEvery", "ProgressBar", "VisualDLLogger", "objective_score", "resolve_objective"]
