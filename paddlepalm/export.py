"""Backward-compatible alias: the Paddle exporter now lives in :mod:`paddlepalm.deploy.paddle_export`."""
from paddlepalm.deploy.paddle_export import (  # noqa: F401
    EXPORT_FILE, Predictor, _inference_predictor, _wrapper, export_model, export_task)
