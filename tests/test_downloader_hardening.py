"""The downloader under contention and hostile input, against local servers on 127.0.0.1 only:
two processes installing one item, a trickling server and the total deadline, a server that never
sends headers, archive bombs, huge member lists, a full disk."""
import errno
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
import time
import zipfile

import pytest
import yaml

from paddlepalm import downloader
from paddlepalm.downloader import DownloadError, NetworkError, UnsafeArchiveError
from paddlepalm.downloader import extract as extract_mod
from paddlepalm.downloader.extract import safe_extract
from paddlepalm.downloader.http import OFFLINE_HINT
from tests.test_downloader import (FILES, _catalog, _clean_env, _left, _read_tree, _sha,  # noqa: F401
                                   _tar_bytes, server)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = dict(retries=1, backoff=0.001, progress=False)


# ----------------------------------------------------------------------------- raw servers
class RawServer:
    """A TCP server on 127.0.0.1 whose connection handler is a plain function of the socket."""

    def __init__(self, handle):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.handle, self.connections, self.open = handle, 0, []
        self.url = "http://127.0.0.1:%d/model.tar.gz" % self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            self.open.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn):
        try:
            conn.recv(65536)
            self.handle(conn)
        except OSError:
            pass

    def close(self):
        self.sock.close()
        for conn in self.open:
            try:
                conn.close()
            except OSError:
                pass


@pytest.fixture
def raw_server():
    made = []

    def make(handle):
        made.append(RawServer(handle))
        return made[-1]
    yield make
    for srv in made:
        srv.close()


def _trickle(conn):
    """Headers promising 10,000 bytes, then one byte every 0.1 s."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n")
    for _ in range(10000):
        conn.sendall(b"x")
        time.sleep(0.1)


# ----------------------------------------------------------------------------- 1. two processes
def test_two_processes_installing_one_item_share_one_download(server, tmp_path):
    data = _tar_bytes(FILES)
    url = server.add("/slow.tar.gz", data, delay=1.0)  # the first install is still running
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(yaml.safe_dump(_catalog("tiny", url, _sha(data))))
    target = tmp_path / "models"
    script = ("import sys; from paddlepalm import downloader; "
              "print(downloader.download('pretrain', 'tiny', sys.argv[1], catalog=sys.argv[2], "
              "retries=0, progress=False))")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs = [subprocess.Popen([sys.executable, "-c", script, str(target), str(catalog)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
        assert "Traceback" not in err
        assert out.strip() == str(target / "tiny")
    assert len(server.hits("/slow.tar.gz")) == 1  # the second waited and reused the install
    assert _read_tree(target / "tiny")["vocab.txt"] == FILES["vocab.txt"]
    assert _left(target) == ["tiny"]


def test_lock_held_too_long_is_a_download_error(server, tmp_path):
    import filelock

    from paddlepalm.downloader.install import lock_path

    data = _tar_bytes(FILES)
    cat = _catalog("tiny", server.add("/t.tar.gz", data), _sha(data))
    with filelock.FileLock(lock_path(str(tmp_path), "tiny")):
        script = ("import sys, json; from paddlepalm import downloader\n"
                  "try:\n    downloader.download('pretrain', 'tiny', sys.argv[1], "
                  "catalog=json.loads(sys.argv[2]), progress=False, lock_timeout=0.5)\n"
                  "except downloader.LockTimeoutError as e:\n    print('LOCKED', e)\n")
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        out = subprocess.run([sys.executable, "-c", script, str(tmp_path), json.dumps(cat)], env=env,
                             capture_output=True, text=True, timeout=120)
    assert out.stdout.startswith("LOCKED another process has been installing 'tiny'"), out.stderr
    assert server.hits("/t.tar.gz") == []


# ----------------------------------------------------------------------------- 2. deadline
def test_trickling_server_is_stopped_by_the_total_deadline(raw_server, tmp_path):
    srv = raw_server(_trickle)
    start = time.monotonic()
    with pytest.raises(downloader.DeadlineError) as err:
        downloader.download("pretrain", "x", str(tmp_path), catalog=_catalog("x", srv.url),
                            timeout=5, deadline=1.0, **FAST)
    elapsed = time.monotonic() - start
    assert elapsed < 4.0  # each byte arrives well within the 5 s read timeout
    message = str(err.value)
    assert "did not finish within the deadline of 1s" in message and srv.url in message
    assert "call download again to resume" in message and isinstance(err.value, NetworkError)
    assert srv.connections == 1  # a deadline is not retried
    part = tmp_path / ".x.download" / "model.tar.gz.part"
    assert 3 <= part.stat().st_size <= 40  # what arrived is kept for the next call


def test_deadline_also_bounds_the_retry_waits(server, tmp_path):
    url = server.add("/busy.tar.gz", b"", statuses=[503] * 10)
    start = time.monotonic()
    with pytest.raises(downloader.DeadlineError, match="last failure: HTTP 503"):
        downloader.download("pretrain", "x", str(tmp_path), catalog=_catalog("x", url),
                            retries=8, backoff=0.5, deadline=1.0, progress=False)
    assert time.monotonic() - start < 2.0 and len(server.hits("/busy.tar.gz")) <= 3


# ----------------------------------------------------------------------------- 3. stalled headers
def test_server_that_never_sends_headers_is_not_called_unreachable(raw_server, tmp_path):
    srv = raw_server(lambda conn: time.sleep(30))
    with pytest.raises(NetworkError) as err:
        downloader.download("pretrain", "x", str(tmp_path), catalog=_catalog("x", srv.url),
                            timeout=(2, 0.3), **FAST)
    message = str(err.value)
    assert message.startswith("127.0.0.1 accepted the connection but sent no HTTP response "
                              "(timed out after 0.3s waiting for the status line and headers; "
                              "2 attempts)")
    assert "cannot reach" not in message and OFFLINE_HINT not in message
    assert srv.connections == 2 and _left(tmp_path) == []


def test_server_closing_without_an_answer_is_named(raw_server, tmp_path):
    srv = raw_server(lambda conn: conn.close())
    with pytest.raises(NetworkError) as err:
        downloader.download("pretrain", "x", str(tmp_path), catalog=_catalog("x", srv.url), **FAST)
    assert "accepted the connection but sent no HTTP response (the connection was closed without " \
           "an answer; 2 attempts)" in str(err.value)
    assert OFFLINE_HINT not in str(err.value)


# ----------------------------------------------------------------------------- 4. extraction
def _zip_bomb(size=48 << 20):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("pkg/vocab.txt", b"a\n")
        zf.writestr("pkg/zeros.bin", b"\0" * size)
    return buf.getvalue()


def test_zip_bomb_is_refused_before_writing_and_nothing_is_left(server, tmp_path):
    data = _zip_bomb()
    assert len(data) < 200 << 10  # 48 MiB of zeros in well under 200 KiB
    cat = _catalog("bomb", server.add("/bomb.zip", data), _sha(data))
    with pytest.raises(UnsafeArchiveError) as err:
        downloader.download("pretrain", "bomb", str(tmp_path), catalog=cat, **FAST)
    message = str(err.value)
    assert "bomb.zip" in message and "would unpack to 48.0 MiB" in message
    assert "limit 200x" in message and "ExtractLimits.max_ratio" in message
    assert _left(tmp_path) == []


def test_total_size_cap_is_settable(tmp_path):
    archive = tmp_path / "big.tar.gz"
    archive.write_bytes(_tar_bytes({"w": os.urandom(3 << 20)}))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match=r"big.tar.gz: it unpacks to 3.0 MiB, more than the "
                                                 r"limit of 2.0 MiB"):
        safe_extract(str(archive), str(dest), downloader.ExtractLimits(max_total_bytes=2 << 20))
    assert os.listdir(dest) == []
    safe_extract(str(archive), str(dest), downloader.ExtractLimits(max_total_bytes=4 << 20))
    assert (dest / "pkg" / "w").stat().st_size == 3 << 20


def test_archive_with_too_many_members_is_refused(server, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for i in range(downloader.ExtractLimits().max_members + 1):
            info = tarfile.TarInfo("pkg/f%05d" % i)
            tar.addfile(info, io.BytesIO(b""))
    data = buf.getvalue()
    cat = _catalog("many", server.add("/many.tar.gz", data), _sha(data))
    with pytest.raises(UnsafeArchiveError, match=r"many.tar.gz: it has more than 5000 members"):
        downloader.download("pretrain", "many", str(tmp_path), catalog=cat, **FAST)
    assert _left(tmp_path) == []
    path = downloader.download("pretrain", "many", str(tmp_path), catalog=cat,
                               limits=downloader.ExtractLimits(max_members=6000), **FAST)
    assert len([n for n in os.listdir(path) if n.startswith("f")]) == 5001


def test_too_little_free_space_is_found_before_extracting(server, tmp_path, monkeypatch):
    data = _tar_bytes(FILES)
    cat = _catalog("tiny", server.add("/tiny.tar.gz", data), _sha(data))
    monkeypatch.setattr(extract_mod, "free_bytes", lambda path: 1000)
    with pytest.raises(DownloadError) as err:
        downloader.download("pretrain", "tiny", str(tmp_path), catalog=cat, **FAST)
    assert "not enough free space to unpack" in str(err.value) and "tiny.tar.gz" in str(err.value)
    assert "1000 bytes are free" in str(err.value)
    assert _left(tmp_path) == []


def test_disk_full_while_extracting_is_a_download_error_and_nothing_is_left(server, tmp_path,
                                                                            monkeypatch):
    data = _tar_bytes(FILES)
    cat = _catalog("tiny", server.add("/tiny.tar.gz", data), _sha(data))
    real_makefile = tarfile.TarFile.makefile
    written = []

    def full_after_one_file(self, tarinfo, targetpath):
        if written:
            raise OSError(errno.ENOSPC, "No space left on device", targetpath)
        written.append(targetpath)
        return real_makefile(self, tarinfo, targetpath)

    monkeypatch.setattr(tarfile.TarFile, "makefile", full_after_one_file)
    with pytest.raises(DownloadError) as err:
        downloader.download("pretrain", "tiny", str(tmp_path), catalog=cat, **FAST)
    message = str(err.value)
    assert "tiny.tar.gz" in message and "the disk is full" in message
    assert type(err.value) is DownloadError and len(written) == 1
    assert _left(tmp_path) == [] and not os.path.exists(written[0])


def test_safe_extract_alone_removes_what_it_wrote_on_a_full_disk(tmp_path, monkeypatch):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("pkg/one", b"1" * 100)
        zf.writestr("pkg/two", b"2" * 100)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "kept").write_text("was here before")
    real = zipfile.ZipFile._extract_member
    calls = []

    def full(self, member, targetpath, pwd):
        calls.append(member)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, member, targetpath, pwd)

    monkeypatch.setattr(zipfile.ZipFile, "_extract_member", full)
    with pytest.raises(DownloadError, match=r"unpacking .*a.zip into .*dest failed: the disk is full"):
        safe_extract(str(archive), str(dest))
    assert os.listdir(dest) == ["kept"]
