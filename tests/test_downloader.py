"""End-to-end downloads from a local HTTP server on 127.0.0.1 (never the internet)."""
import hashlib
import io
import json
import os
import re
import socket
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import numpy as np
import pytest

from paddlepalm import downloader
from paddlepalm.downloader import (ChecksumError, DownloadError, HTTPStatusError, NetworkError,
                                   UnsafeArchiveError)
from paddlepalm.downloader.http import FetchOptions, fetch, make_session
from paddlepalm.errors import PalmError

FAST = dict(retries=2, backoff=0.001, timeout=5, progress=False)
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


# ----------------------------------------------------------------------------- local server
class Route:
    """What the server answers on one path: a body, error statuses first, a dropped connection."""

    def __init__(self, body=b"", statuses=(), drop_after=None, honor_range=True, delay=0.0,
                 etag=None):
        self.body, self.statuses, self.drop_after = body, list(statuses), drop_after
        self.honor_range, self.delay, self.etag = honor_range, delay, etag


class LocalServer(ThreadingHTTPServer):
    """A 127.0.0.1 file server (and plain HTTP proxy) that logs every request."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes, self.log = {}, []
        self.base = "http://127.0.0.1:%d" % self.server_address[1]

    def add(self, path, body, **behaviour):
        self.routes[path] = Route(body, **behaviour)
        return self.base + path

    def hits(self, path):
        return [headers for logged, headers in self.log if urlsplit(logged).path == path]


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        server.log.append((self.path, dict(self.headers)))
        route = server.routes.get(urlsplit(self.path).path)
        if route is None:
            return self.send_error(404)
        if route.statuses:
            return self.send_error(route.statuses.pop(0))
        time.sleep(route.delay)
        body, start = route.body, 0
        match = re.match(r"bytes=(\d+)-$", self.headers.get("Range", ""))
        if_range = self.headers.get("If-Range")
        if match and route.honor_range and (if_range is None or if_range == route.etag):
            start = int(match.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % len(body))
                self.send_header("Content-Length", "0")
                return self.end_headers()
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(body) - 1, len(body)))
        else:
            self.send_response(200)
        payload = body[start:]
        if route.etag:
            self.send_header("ETag", route.etag)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if route.drop_after is not None:
            cut, route.drop_after = route.drop_after, None
            self.wfile.write(payload[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)


@pytest.fixture
def server():
    srv = LocalServer()
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.lower(), raising=False)
    monkeypatch.delenv(downloader.ENV_VAR, raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)


# ----------------------------------------------------------------------------- archives
FILES = {"vocab.txt": b"[PAD]\n[UNK]\nhello\n", "params/w_0": bytes(range(256)) * 64}


def _tar_bytes(files, root="pkg", mode="w:gz"):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo("%s/%s" % (root, name) if root else name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip_bytes(files, root="pkg"):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr("%s/%s" % (root, name), data)
    return buf.getvalue()


def _dir_tar(src_dir, root="model"):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src_dir, arcname=root)
    return buf.getvalue()


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def _catalog(name, url=None, sha256=None, fmt="paddlepalm", **extra):
    entry = dict(name=name, format=fmt, sha256=sha256, **extra)
    if url is not None:
        entry["url"] = url
    return {"pretrain": [entry]}


def _left(folder):
    """What a download left in ``folder``, sorted; the empty install lock files are expected."""
    return sorted(n for n in os.listdir(folder) if not n.endswith(".lock"))


def _read_tree(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            path = os.path.join(dirpath, f)
            out[os.path.relpath(path, root).replace(os.sep, "/")] = open(path, "rb").read()
    return out


# ----------------------------------------------------------------------------- happy paths
@pytest.mark.parametrize("suffix, make", [
    (".tar.gz", lambda f: _tar_bytes(f)), (".tgz", lambda f: _tar_bytes(f)),
    (".tar", lambda f: _tar_bytes(f, mode="w")), (".zip", _zip_bytes),
    (".tar.gz", lambda f: _tar_bytes(f, root=None)),
])
def test_download_verifies_unpacks_strips_root_and_marks(server, tmp_path, suffix, make):
    data = make(FILES)
    url = server.add("/m/pkg" + suffix, data)
    path = downloader.download("pretrain", "tiny", str(tmp_path / "models"),
                               catalog=_catalog("tiny", url, _sha(data)), **FAST)
    assert path == str(tmp_path / "models" / "tiny")
    tree = _read_tree(path)
    marker = json.loads(tree.pop(downloader.MARKER))
    assert tree == FILES
    assert marker["sha256"] == _sha(data) and marker["source"] == url
    assert _left(tmp_path / "models") == ["tiny"]  # no temp dirs or archives left
    assert server.hits("/m/pkg" + suffix)[0]["Accept-Encoding"] == "identity"


def test_palm_positional_signature_and_scope_list(server, tmp_path):
    a, b = _tar_bytes({"a.txt": b"a"}), _tar_bytes({"b.txt": b"b"})
    cat = {"pretrain": [dict(name="one", url=server.add("/one.tgz", a), format="paddlepalm"),
                        dict(name="two", url=server.add("/two.tgz", b), format="paddlepalm")]}
    target = str(tmp_path / "pretrain_models")
    assert downloader.download("pretrain", "one", target, catalog=cat, **FAST) == \
        os.path.join(target, "one")
    paths = downloader.download("pretrain", ["one", "two"], target, catalog=cat, **FAST)
    assert paths == [os.path.join(target, "one"), os.path.join(target, "two")]
    assert len(server.hits("/one.tgz")) == 1  # the second call found it installed


def test_unknown_name_is_a_clear_error(tmp_path):
    with pytest.raises(downloader.UnknownItemError, match="did you mean 'BERT-en-uncased-base'"):
        downloader.download("pretrain", "BERT-en-uncased-bsae", str(tmp_path), **FAST)
    assert _left(tmp_path) == []


def test_already_present_is_not_downloaded_again(server, tmp_path):
    data = _tar_bytes(FILES)
    cat = _catalog("tiny", server.add("/tiny.tar.gz", data))
    first = downloader.download("pretrain", "tiny", str(tmp_path), catalog=cat, **FAST)
    server.log.clear()
    assert downloader.download("pretrain", "tiny", str(tmp_path), catalog=cat, **FAST) == first
    assert server.log == []
    # pinning a different checksum makes the installed copy stale: refused unless force=True
    pinned = _catalog("tiny", server.base + "/tiny.tar.gz", "0" * 64)
    with pytest.raises(DownloadError, match="holds a different download.*force=True"):
        downloader.download("pretrain", "tiny", str(tmp_path), catalog=pinned, **FAST)
    assert server.log == []
    cat_ok = _catalog("tiny", server.base + "/tiny.tar.gz", _sha(data))
    assert downloader.download("pretrain", "tiny", str(tmp_path), catalog=cat_ok, force=True,
                               **FAST) == first
    assert len(server.log) == 1 and _left(tmp_path) == ["tiny"]


def test_existing_directory_not_made_by_downloader_is_left_alone(server, tmp_path):
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "mine.txt").write_text("keep me")
    cat = _catalog("tiny", server.add("/tiny.tar.gz", _tar_bytes(FILES)))
    with pytest.raises(DownloadError, match="not installed by the downloader"):
        downloader.download("pretrain", "tiny", str(tmp_path), catalog=cat, **FAST)
    assert (tmp_path / "tiny" / "mine.txt").read_text() == "keep me" and server.log == []


def test_non_archive_item_is_placed_in_its_directory(server, tmp_path):
    cat = {"vocab": [dict(name="my-vocab", url=server.add("/v/vocab.txt", b"a\nb\n"))]}
    path = downloader.download("vocab", "my-vocab", str(tmp_path), catalog=cat, **FAST)
    assert (tmp_path / "my-vocab" / "vocab.txt").read_bytes() == b"a\nb\n" and path


def test_second_mirror_is_used_when_the_first_fails(server, tmp_path):
    data = _tar_bytes(FILES)
    urls = [server.base + "/gone.tgz", server.add("/mirror.tgz", data)]
    path = downloader.download("pretrain", "tiny", str(tmp_path),
                               catalog=_catalog("tiny", urls, _sha(data)), **FAST)
    assert _read_tree(path)["vocab.txt"] == FILES["vocab.txt"]


# ----------------------------------------------------------------------------- resume / retries
def test_dropped_connection_is_resumed_by_the_next_call(server, tmp_path):
    data = os.urandom(200_000)
    archive = _tar_bytes({"blob.bin": data})
    half = len(archive) // 2
    url = server.add("/big.tar.gz", archive, drop_after=half)
    cat = _catalog("big", url, _sha(archive))
    with pytest.raises(NetworkError, match="interrupted.*call download again to resume"):
        downloader.download("pretrain", "big", str(tmp_path), catalog=cat,
                            **dict(FAST, retries=0))
    part = tmp_path / ".big.download" / "big.tar.gz.part"
    assert part.stat().st_size == half and not (tmp_path / "big").exists()
    path = downloader.download("pretrain", "big", str(tmp_path), catalog=cat, **FAST)
    hits = server.hits("/big.tar.gz")
    assert "Range" not in hits[0] and hits[1]["Range"] == "bytes=%d-" % half
    assert _read_tree(path)["blob.bin"] == data
    assert _left(tmp_path) == ["big"]


def test_dropped_connection_is_resumed_within_one_call(server, tmp_path):
    archive = _tar_bytes({"blob.bin": os.urandom(50_000)})
    url = server.add("/big.tar.gz", archive, drop_after=1000)
    downloader.download("pretrain", "big", str(tmp_path),
                        catalog=_catalog("big", url, _sha(archive)), **FAST)
    assert [h.get("Range") for h in server.hits("/big.tar.gz")] == [None, "bytes=1000-"]


def test_server_ignoring_range_restarts_from_scratch(server, tmp_path):
    archive = _tar_bytes({"blob.bin": os.urandom(50_000)})
    url = server.add("/big.tar.gz", archive, drop_after=3000, honor_range=False)
    path = downloader.download("pretrain", "big", str(tmp_path),
                               catalog=_catalog("big", url, _sha(archive)), **FAST)
    assert server.hits("/big.tar.gz")[1]["Range"] == "bytes=3000-"  # asked, got 200 anyway
    assert os.path.getsize(os.path.join(path, "blob.bin")) == 50_000


def test_complete_part_file_is_finished_via_416(server, tmp_path):
    body = os.urandom(4096)
    url = server.add("/f.bin", body)
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(body)
    (tmp_path / "f.bin.part.json").write_text(json.dumps({"url": url}))
    assert fetch(url, str(dest), _sha(body), FetchOptions(progress=False)) == _sha(body)
    assert dest.read_bytes() == body and server.hits("/f.bin")[0]["Range"] == "bytes=4096-"


def test_file_changed_on_the_server_is_fetched_again_not_spliced(server, tmp_path):
    old, new = os.urandom(30_000), os.urandom(40_000)
    url = server.add("/v.bin", old, drop_after=10_000, etag='"v1"')
    dest = str(tmp_path / "v.bin")
    with pytest.raises(NetworkError):
        fetch(url, dest, None, FetchOptions(retries=0, progress=False))
    server.add("/v.bin", new, etag='"v2"')
    fetch(url, dest, None, FetchOptions(retries=0, progress=False))
    hits = server.hits("/v.bin")
    assert hits[1]["Range"] == "bytes=10000-" and hits[1]["If-Range"] == '"v1"'
    assert open(dest, "rb").read() == new and not os.path.exists(dest + ".part.json")


def test_partial_file_from_another_url_is_discarded(server, tmp_path):
    body = os.urandom(5000)
    url = server.add("/a.bin", body)
    (tmp_path / "a.bin.part").write_bytes(b"x" * 100)
    (tmp_path / "a.bin.part.json").write_text(json.dumps({"url": server.base + "/other.bin"}))
    fetch(url, str(tmp_path / "a.bin"), _sha(body), FetchOptions(progress=False))
    assert "Range" not in server.hits("/a.bin")[0]


def test_500_is_retried_with_backoff_then_succeeds(server, tmp_path):
    body = os.urandom(1000)
    url = server.add("/flaky.bin", body, statuses=[500, 503])
    delays = []
    fetch(url, str(tmp_path / "flaky.bin"), _sha(body),
          FetchOptions(retries=3, backoff=0.5, progress=False), sleep=delays.append)
    assert delays == [0.5, 1.0] and len(server.hits("/flaky.bin")) == 3


def test_500_is_retried_then_fails(server, tmp_path):
    url = server.add("/broken.tgz", b"", statuses=[500] * 10)
    with pytest.raises(NetworkError, match=r"HTTP 500 .*gave up after 3 attempts"):
        downloader.download("pretrain", "x", str(tmp_path), catalog=_catalog("x", url), **FAST)
    assert len(server.hits("/broken.tgz")) == 3
    assert _left(tmp_path) == []


def test_404_fails_at_once(server, tmp_path):
    url = server.base + "/missing.tar.gz"
    with pytest.raises(HTTPStatusError, match="HTTP 404 .*missing.tar.gz") as err:
        downloader.download("pretrain", "x", str(tmp_path), catalog=_catalog("x", url), **FAST)
    assert err.value.status == 404 and isinstance(err.value, PalmError)
    assert len(server.hits("/missing.tar.gz")) == 1 and _left(tmp_path) == []


def test_read_timeout_is_retried(server, tmp_path):
    url = server.add("/slow.bin", b"x", delay=1.0)
    start = time.monotonic()
    with pytest.raises(NetworkError, match="timed out"):
        fetch(url, str(tmp_path / "slow.bin"), None,
              FetchOptions(retries=1, backoff=0.001, timeout=0.2, progress=False))
    assert len(server.hits("/slow.bin")) == 2 and time.monotonic() - start < 1.5


def test_offline_message_names_host_and_convert(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = "http://127.0.0.1:%d/ERNIE.tar.gz" % port
    with pytest.raises(NetworkError) as err:
        downloader.download("pretrain", "x", str(tmp_path), catalog=_catalog("x", url), **FAST)
    message = str(err.value)
    assert message.startswith("cannot reach 127.0.0.1: ")
    assert "to use a local copy run: paddlepalm convert SRC_DIR DST_DIR" in message
    assert "refused" in message.lower() and isinstance(err.value, DownloadError)
    assert _left(tmp_path) == []


# ----------------------------------------------------------------------------- refusals
def test_wrong_checksum_removes_the_file(server, tmp_path):
    data = _tar_bytes(FILES)
    cat = _catalog("tiny", server.add("/tiny.tar.gz", data), "f" * 64)
    with pytest.raises(ChecksumError) as err:
        downloader.download("pretrain", "tiny", str(tmp_path), catalog=cat, **FAST)
    assert "expected %s" % ("f" * 64) in str(err.value)
    assert "got %s" % _sha(data) in str(err.value)
    assert _left(tmp_path) == []


def _evil_tar(kind):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        ok = tarfile.TarInfo("pkg/vocab.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"a\n"))
        if kind == "symlink":
            info = tarfile.TarInfo("pkg/escape")
            info.type, info.linkname = tarfile.SYMTYPE, "../../../outside"
            tar.addfile(info)
        else:
            info = tarfile.TarInfo({"dotdot": "../evil", "absolute": "/tmp/evil"}[kind])
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
    return buf.getvalue()


@pytest.mark.parametrize("kind, why", [("dotdot", "contains '..'"),
                                       ("absolute", "absolute path"),
                                       ("symlink", "outside the target")])
def test_unsafe_archive_is_refused_and_nothing_is_left(server, tmp_path, kind, why):
    data = _evil_tar(kind)
    target = tmp_path / "models"
    cat = _catalog("evil", server.add("/evil.tar.gz", data), _sha(data))
    with pytest.raises(UnsafeArchiveError, match=why):
        downloader.download("pretrain", "evil", str(target), catalog=cat, **FAST)
    assert _left(target) == []
    assert not (tmp_path / "evil").exists() and not (tmp_path / "outside").exists()


# ----------------------------------------------------------------------------- proxies
def test_session_keeps_trust_env():
    assert make_session().trust_env is True


def test_http_proxy_variable_is_honoured(server, tmp_path, monkeypatch):
    data = _tar_bytes(FILES)
    server.add("/bert/tiny.tar.gz", data)  # the local server plays the proxy
    monkeypatch.setenv("HTTP_PROXY", server.base)
    url = "http://models.example.invalid/bert/tiny.tar.gz"
    path = downloader.download("pretrain", "tiny", str(tmp_path),
                               catalog=_catalog("tiny", url, _sha(data)), **FAST)
    assert server.log[0][0] == url  # absolute-form request line: it went through the proxy
    assert _read_tree(path)["vocab.txt"] == FILES["vocab.txt"]


def test_unreachable_proxy_is_named(tmp_path, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        proxy = "http://127.0.0.1:%d" % s.getsockname()[1]
    monkeypatch.setenv("HTTP_PROXY", proxy)
    url = "http://models.example.invalid/x.tar.gz"
    with pytest.raises(NetworkError, match="cannot reach models.example.invalid "
                                           r"\(through proxy %s\)" % re.escape(proxy)):
        downloader.download("pretrain", "x", str(tmp_path), catalog=_catalog("x", url), **FAST)


# ----------------------------------------------------------------------------- real conversion
def _state(model):
    return {k: v.numpy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("layout", ["paddlenlp", "hf"])
def test_tiny_model_archive_is_converted_and_loads(server, tmp_path, layout):
    from paddlepalm.backbone import BERT, detect_layout
    from tests.helpers import make_tiny_checkpoint, tiny_model

    src = make_tiny_checkpoint(str(tmp_path / "src"), layout, model=tiny_model("bert", seed=3))
    data = _dir_tar(src, root="tiny-" + layout)
    url = server.add("/tiny-%s.tar.gz" % layout, data)
    path = downloader.download("pretrain", "tiny", str(tmp_path / "pretrain_models"),
                               catalog=_catalog("tiny", url, _sha(data), fmt=layout), **FAST)
    assert detect_layout(path) == "paddlepalm"
    assert os.path.isfile(os.path.join(path, "vocab.txt"))
    assert downloader.read_marker(path)["format"] == layout
    loaded = BERT.from_pretrained(path)
    expected = _state(tiny_model("bert", seed=3))
    for key, value in _state(loaded).items():
        np.testing.assert_allclose(value, expected[key], rtol=0, atol=1e-6, err_msg=key)
    assert _left(tmp_path / "pretrain_models") == ["tiny"]


def test_hf_repo_entry_fetches_files_skips_missing_optional_and_loads(server, tmp_path,
                                                                     monkeypatch):
    from paddlepalm.backbone import RoBERTa
    from tests.helpers import make_tiny_checkpoint

    src = make_tiny_checkpoint(str(tmp_path / "src"), "hf", model_type="roberta")
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        server.add("/someone/tiny-roberta/resolve/main/" + name,
                   open(os.path.join(src, name), "rb").read())
    monkeypatch.setenv("HF_ENDPOINT", server.base)
    weights_sha = _sha(open(os.path.join(src, "model.safetensors"), "rb").read())
    cat = {"pretrain": [dict(name="tiny-roberta", hf_repo="someone/tiny-roberta", format="hf",
                             files=["config.json", {"name": "model.safetensors",
                                                    "sha256": weights_sha},
                                    "vocab.txt", {"name": "tokenizer.json",
                                                  "optional": True}])]}
    path = downloader.download("pretrain", "tiny-roberta", str(tmp_path / "out"),
                               catalog=cat, **FAST)
    model = RoBERTa.from_pretrained(path)
    assert model.config.model_type == "roberta"
    assert downloader.read_marker(path)["sha256"]["model.safetensors"] == weights_sha
    assert len(server.hits("/someone/tiny-roberta/resolve/main/tokenizer.json")) == 1
    assert _left(tmp_path / "out") == ["tiny-roberta"]


def test_unconvertible_checkpoint_is_a_clear_error(server, tmp_path):
    data = _tar_bytes({"readme.txt": b"not a model"})
    cat = _catalog("junk", server.add("/junk.tgz", data), fmt="paddlenlp")
    with pytest.raises(DownloadError, match="could not convert it from the paddlenlp layout"):
        downloader.download("pretrain", "junk", str(tmp_path), catalog=cat, **FAST)
    assert _left(tmp_path) == []
