import subprocess
import sys

from paddlepalm._env import configure_cpu_math


def test_import_is_lazy_and_offline():
    code = (
        "import socket, sys\n"
        "def refuse(*a, **k):\n"
        "    raise AssertionError('network call at import')\n"
        "socket.socket.connect = refuse\n"
        "import paddlepalm\n"
        "assert 'paddle' not in sys.modules, 'import paddlepalm imported paddle'\n"
        "from paddlepalm import downloader\n"
        "assert 'paddle' not in sys.modules\n"
        "import paddlepalm as palm\n"
        "palm.Trainer, palm.MultiHeadTrainer, palm.reader.ClassifyReader, palm.head.Classify\n"
        "palm.backbone.ERNIE, palm.optimizer.Adam, palm.lr_sched.TriangularSchedualer, palm.load\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")


def test_mkl_setting_only_on_amd_and_only_if_unset(monkeypatch):
    import paddlepalm._env as env

    monkeypatch.setattr(env, "cpu_vendor", lambda: "AuthenticAMD")
    environ = {}
    assert configure_cpu_math(environ) and environ["MKL_DEBUG_CPU_TYPE"] == "5"
    environ = {"MKL_DEBUG_CPU_TYPE": "4"}
    assert not configure_cpu_math(environ) and environ["MKL_DEBUG_CPU_TYPE"] == "4"
    monkeypatch.setattr(env, "cpu_vendor", lambda: "GenuineIntel")
    environ = {}
    assert not configure_cpu_math(environ) and environ == {}


def test_public_api_names():
    import paddlepalm as palm

    for name in ("ClassifyReader", "MatchReader", "SequenceLabelReader", "MRCReader", "MaskLMReader"):
        assert hasattr(palm.reader, name)
    for name in ("Classify", "Match", "SequenceLabel", "MRC", "MaskLM"):
        assert hasattr(palm.head, name)
    for name in ("ERNIE", "BERT", "RoBERTa"):
        assert hasattr(palm.backbone, name)
    assert callable(palm.downloader.ls) and callable(palm.downloader.download)
