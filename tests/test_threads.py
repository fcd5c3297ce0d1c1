"""CPU thread defaults (paddlepalm/_env.py): applied when unset, left alone when the user set them.

The process-level tests start a fresh interpreter each, because the setting must happen before
paddle loads; they read back what MKL and OpenMP themselves report after a real matmul.
"""
import json
import os
import subprocess
import sys

import pytest

from paddlepalm import _env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "FLAGS_paddle_num_threads", "PADDLEPALM_NUM_THREADS",
               "_PADDLEPALM_DEFAULT_THREADS", "PADDLE_LOCAL_SIZE")

PROBE = """
import json, sys
{pre}
import paddlepalm
import paddle
{post}
paddle.matmul(paddle.ones([256, 256]), paddle.ones([256, 256])).numpy()  # loads MKL
print("FACTS " + json.dumps(paddlepalm.thread_facts()))
"""


def probe(env=None, pre="", post="", cpus=None):
    """thread_facts() of a fresh process started with ``env`` (thread variables cleared first)."""
    full = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    full.update(env or {})
    full["PYTHONPATH"] = ROOT + os.pathsep + full.get("PYTHONPATH", "")
    setaffinity = (lambda: os.sched_setaffinity(0, cpus)) if cpus is not None else None
    proc = subprocess.run([sys.executable, "-c", PROBE.format(pre=pre, post=post)], env=full, capture_output=True,
                          text=True, timeout=300, preexec_fn=setaffinity)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("FACTS ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("FACTS "):])


def expected_default(cpus=None):
    allowed = set(cpus) if cpus is not None else None
    n = _env.physical_cores(allowed)
    quota = _env.cgroup_cpu_limit()
    return min(n, max(1, int(quota))) if quota is not None else n


def mkl_threads(n):
    """MKL never reports more threads than physical cores (MKL_DYNAMIC)."""
    return min(n, _env.physical_cores())


def test_default_applied_when_unset():
    facts = probe()
    n = expected_default()
    assert facts["source"] == "default" and facts["num_threads"] == n
    assert facts["OMP_NUM_THREADS"] == facts["MKL_NUM_THREADS"] == str(n)
    assert facts["mkl_max_threads"] == n and facts["omp_max_threads"] == n  # what the libraries really use
    assert facts["MKL_DEBUG_CPU_TYPE"] == ("5" if _env.cpu_vendor() == "AuthenticAMD" else None)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs 2 CPUs to restrict the affinity mask")
def test_default_follows_the_affinity_mask():
    cpu = min(os.sched_getaffinity(0))
    facts = probe(cpus={cpu})
    assert facts["affinity_cpus"] == 1 and facts["num_threads"] == 1
    assert facts["mkl_max_threads"] == 1 and facts["omp_max_threads"] == 1


@pytest.mark.parametrize("env", [{"OMP_NUM_THREADS": "3"}, {"MKL_NUM_THREADS": "3"},
                                 {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3"},
                                 {"FLAGS_paddle_num_threads": "3"}])
def test_user_setting_left_alone(env):
    facts = probe(env)
    name = next(iter(env))
    assert facts["source"] == "user (%s=3)" % name and facts["num_threads"] is None
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if var in env:
            assert facts[var] == "3"
    if "MKL_NUM_THREADS" not in env and "OMP_NUM_THREADS" not in env:
        assert facts["MKL_NUM_THREADS"] is None  # nothing written on the user's behalf
    if env.get("OMP_NUM_THREADS") == "3":
        assert facts["omp_max_threads"] == 3


def test_paddlepalm_num_threads_chooses():
    facts = probe({"PADDLEPALM_NUM_THREADS": "3"})
    assert facts["source"] == "PADDLEPALM_NUM_THREADS" and facts["num_threads"] == 3
    assert facts["omp_max_threads"] == 3 and facts["mkl_max_threads"] == mkl_threads(3)


def test_paddlepalm_num_threads_wins_over_omp_num_threads():
    facts = probe({"PADDLEPALM_NUM_THREADS": "1", "OMP_NUM_THREADS": "3"})
    assert facts["source"] == "PADDLEPALM_NUM_THREADS" and facts["OMP_NUM_THREADS"] == "1"
    assert facts["omp_max_threads"] == 1 and facts["mkl_max_threads"] == 1


def test_bad_paddlepalm_num_threads_is_a_clear_error():
    full = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    full.update(PADDLEPALM_NUM_THREADS="lots", PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-c", "import paddlepalm"], env=full, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert "PADDLEPALM_NUM_THREADS must be a positive integer" in proc.stderr and "'lots'" in proc.stderr


def test_paddle_imported_first_still_gets_the_default():
    # paddle writes OMP_NUM_THREADS=1 when it is unset; that is not the user's choice
    facts = probe(pre="import paddle")
    n = expected_default()
    assert facts["source"] == "default" and facts["num_threads"] == n
    assert facts["mkl_max_threads"] == n and facts["omp_max_threads"] == n


def test_set_num_threads_at_run_time():
    facts = probe(post="paddlepalm.set_num_threads(3)")
    assert facts["source"] == "num_threads option" and facts["num_threads"] == 3
    assert facts["OMP_NUM_THREADS"] == facts["MKL_NUM_THREADS"] == "3"
    assert facts["omp_max_threads"] == 3 and facts["mkl_max_threads"] == mkl_threads(3)


def test_set_num_threads_rejects_non_positive():
    with pytest.raises(ValueError, match="num_threads must be a positive integer"):
        _env.set_num_threads(0, "num_threads")
    with pytest.raises(ValueError, match="num_threads must be a positive integer"):
        _env.parse_num_threads("two", "num_threads")


# ----------------------------------------------------------------------------- machine limits
CPUINFO_SMT = "".join("processor\t: %d\nphysical id\t: 0\ncore id\t\t: %d\n\n" % (cpu, cpu % 2) for cpu in range(4))


def test_physical_cores_counts_hyperthreads_once(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO_SMT)  # 4 logical CPUs on 2 cores (0,2 -> core 0; 1,3 -> core 1)
    assert _env.physical_cores({0, 1, 2, 3}, str(path)) == 2
    assert _env.physical_cores({0, 2}, str(path)) == 1
    assert _env.physical_cores({0, 1}, str(path)) == 2
    assert _env.physical_cores({0, 1}, str(tmp_path / "missing")) == 2  # falls back to the mask


def test_cgroup_v2_quota(tmp_path):
    (tmp_path / "proc").write_text("0::/job\n")
    (tmp_path / "fs" / "job").mkdir(parents=True)
    (tmp_path / "fs" / "cpu.max").write_text("max 100000\n")
    (tmp_path / "fs" / "job" / "cpu.max").write_text("150000 100000\n")
    assert _env.cgroup_cpu_limit(str(tmp_path / "proc"), str(tmp_path / "fs")) == pytest.approx(1.5)
    (tmp_path / "fs" / "job" / "cpu.max").write_text("max 100000\n")
    assert _env.cgroup_cpu_limit(str(tmp_path / "proc"), str(tmp_path / "fs")) is None
    (tmp_path / "fs" / "cpu.max").write_text("300000 100000\n")  # a parent's limit counts too
    assert _env.cgroup_cpu_limit(str(tmp_path / "proc"), str(tmp_path / "fs")) == pytest.approx(3.0)


def test_cgroup_v1_quota(tmp_path):
    (tmp_path / "proc").write_text("2:cpuacct:/\n1:cpu:/job\n")
    d = tmp_path / "fs" / "cpu" / "job"
    d.mkdir(parents=True)
    (d / "cpu.cfs_quota_us").write_text("200000\n")
    (d / "cpu.cfs_period_us").write_text("100000\n")
    assert _env.cgroup_cpu_limit(str(tmp_path / "proc"), str(tmp_path / "fs")) == pytest.approx(2.0)
    (d / "cpu.cfs_quota_us").write_text("-1\n")
    assert _env.cgroup_cpu_limit(str(tmp_path / "proc"), str(tmp_path / "fs")) is None


def test_default_num_threads_rounds_a_quota_down_and_shares_among_launched_ranks(monkeypatch):
    monkeypatch.setattr(_env, "physical_cores", lambda: 8)
    monkeypatch.setattr(_env, "cgroup_cpu_limit", lambda: 2.5)
    assert _env.default_num_threads({}) == 2
    monkeypatch.setattr(_env, "cgroup_cpu_limit", lambda: 0.5)
    assert _env.default_num_threads({}) == 1
    monkeypatch.setattr(_env, "cgroup_cpu_limit", lambda: None)
    assert _env.default_num_threads({}) == 8
    assert _env.default_num_threads({"PADDLE_LOCAL_SIZE": "3"}) == 2  # 3 ranks on this machine
    assert _env.default_num_threads({"PADDLE_LOCAL_SIZE": "16"}) == 1


def test_a_parents_default_is_recomputed_a_users_choice_is_not():
    n = expected_default()
    inherited = {"OMP_NUM_THREADS": "7", "MKL_NUM_THREADS": "7", "_PADDLEPALM_DEFAULT_THREADS": "7"}
    facts = probe(inherited)  # a default paddlepalm wrote in a parent process
    assert facts["source"] == "default" and facts["num_threads"] == n
    facts = probe(dict(inherited, OMP_NUM_THREADS="1"))  # changed by the user since: theirs
    assert facts["source"] == "user (OMP_NUM_THREADS=1)"


# ----------------------------------------------------------------------------- the run's option
CONFIG = """\
backbone:
  config: {hidden_size: 8, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 16, vocab_size: 50}
tokenizer:
  vocab: vocab.txt
tasks:
  intent:
    reader: classify
    train: intent.tsv
num_threads: %s
"""


def _config(tmp_path, value):
    from paddlepalm.config import load_config

    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nplay\n")
    (tmp_path / "intent.tsv").write_text("label\ttext_a\n0\tplay\n")
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG % value)
    return str(path), load_config


def test_yaml_num_threads_is_validated(tmp_path):
    from paddlepalm.errors import ConfigError

    path, load_config = _config(tmp_path, "2")
    assert load_config(path).settings["num_threads"] == 2
    path, load_config = _config(tmp_path, "0")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "%s:9: num_threads" % path in str(info.value)


def test_configure_run_threads_logs_and_returns_facts(caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="paddlepalm"):
        facts = _env.configure_run_threads(None)
    assert facts["physical_cores"] == _env.physical_cores() and "source" in facts
    line = [r.getMessage() for r in caplog.records if r.getMessage().startswith("threads: ")]
    assert line and facts["source"] in line[0]
    json.dumps(facts)  # goes into results.json as it is
