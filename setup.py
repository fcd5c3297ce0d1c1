"""Packaging for paddlepalm.

PaddlePaddle is an *extra* so CPU and GPU users each get the right wheel:

    pip install -e ".[cpu]"     # paddlepaddle (CPU)
    pip install -e ".[gpu]"     # paddlepaddle-gpu (pick the CUDA build per Paddle's install guide)
"""
import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "paddlepalm", "version.py"), encoding="utf-8") as f:
    VERSION = re.search(r'__version__ = "([^"]+)"', f.read()).group(1)
with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
    LONG_DESCRIPTION = f.read()

setup(
    name="paddlepalm",
    version=VERSION,
    description="Declarative multi-task fine-tuning of pretrained transformer encoders on PaddlePaddle",
    long_description=LONG_DESCRIPTION,
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(include=["paddlepalm", "paddlepalm.*"]),
    package_data={"paddlepalm": ["downloader/*.yaml"]},
    python_requires=">=3.8",
    install_requires=[
        "numpy",
        "pyyaml>=5.1",
        "requests>=2.20",
        "tqdm>=4.40",
        "tokenizers>=0.13",
        "safetensors>=0.3",
        "filelock>=3.12",
    ],
    extras_require={
        "cpu": ["paddlepaddle>=2.6"],
        "gpu": ["paddlepaddle-gpu>=2.6"],
        "plot": ["matplotlib>=3.3"],
        "test": ["pytest>=7", "seqeval>=1.2", "matplotlib>=3.3"],  # the report tests draw real PNGs
        # deployment (paddlepalm.deploy), optional: ONNX export + ONNX Runtime (+ int8), and the HTTP service
        "onnx": ["paddle2onnx==2.1.0", "onnx>=1.16", "onnxruntime>=1.18"],
        "serve": ["starlette>=0.37", "uvicorn>=0.29"],
        # PaddleNLP 2.8.1 only imports with these pins (numpy<2); optional, never required.
        "paddlenlp": [
            "paddlenlp==2.8.1",
            "huggingface_hub<0.26",
            "aistudio-sdk<0.3",
            "pyarrow<15",
            "datasets<2.20",
            "numpy<2",
        ],
    },
    entry_points={"console_scripts": ["paddlepalm=paddlepalm.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: Apache Software License",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
