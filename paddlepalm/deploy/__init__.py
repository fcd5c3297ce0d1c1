"""Deployment: export a saved model (Paddle static program, ONNX, int8 ONNX), run it on an
inference engine with ``palm.load``'s pre- and post-processing, and serve it over HTTP.

* :func:`export` (``paddlepalm export MODEL_DIR --format onnx``): :mod:`paddlepalm.deploy.exporter`
* :class:`Predictor` (``backend='dygraph' | 'inference' | 'onnxruntime'``): :mod:`paddlepalm.deploy.predictor`
* ``paddlepalm serve MODEL_DIR``: :mod:`paddlepalm.deploy.serve` (the ``[serve]`` extra)

The ONNX pieces need the ``[onnx]`` extra (paddle2onnx, onnx, onnxruntime), imported on use only.
"""
from paddlepalm.deploy.exporter import FORMATS, export
from paddlepalm.deploy.predictor import BACKENDS, Predictor

__all__ = ["BACKENDS", "FORMATS", "Predictor", "export"]
