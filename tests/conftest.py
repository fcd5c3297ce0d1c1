import logging
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def data_root() -> str:
    return os.environ.get("PADDLEPALM_DATA", os.path.join(ROOT, "..", "shared", "datasets"))


@pytest.fixture
def datasets_dir():
    path = data_root()
    if not os.path.isdir(path):
        pytest.skip("real datasets not found at %s (set PADDLEPALM_DATA)" % path)
    return path


@pytest.fixture(autouse=True)
def _quiet_paddlepalm_logs(caplog):
    caplog.set_level(logging.INFO, logger="paddlepalm")
    yield
