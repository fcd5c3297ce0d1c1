"""Safe archive extraction: what is unpacked, what is refused."""
import io
import os
import tarfile
import zipfile

import pytest

from paddlepalm.downloader.errors import DownloadError, UnsafeArchiveError
from paddlepalm.downloader.extract import content_root, is_archive, safe_extract


def _tar(path, members, mode="w:gz"):
    """Write a tar; ``members`` are (name, bytes) files or prepared TarInfo objects."""
    with tarfile.open(path, mode) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                name, data = member
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return str(path)


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def _special(name, kind):
    info = tarfile.TarInfo(name)
    info.type = kind
    return info


@pytest.fixture
def dest(tmp_path):
    path = tmp_path / "box" / "dest"
    path.mkdir(parents=True)
    return path


def test_tar_with_internal_symlink_and_dirs_is_unpacked(tmp_path, dest):
    archive = _tar(tmp_path / "ok.tar.gz", [("model/vocab.txt", b"a\nb\n"),
                                           ("model/params/w_0", b"\x00" * 8),
                                           _link("model/vocab_link.txt", "vocab.txt")])
    safe_extract(archive, str(dest))
    root = content_root(str(dest))
    assert root == str(dest / "model")
    assert (dest / "model" / "params" / "w_0").read_bytes() == b"\x00" * 8
    assert os.readlink(dest / "model" / "vocab_link.txt") == "vocab.txt"


@pytest.mark.parametrize("members, why", [
    ([("../evil", b"x")], "contains '..'"),
    ([("model/../../evil", b"x")], "contains '..'"),
    ([("/tmp/evil", b"x")], "absolute path"),
    ([("..\\evil", b"x")], "contains '..'"),
    ([("C:/evil", b"x")], "absolute path"),
    ([_link("model/link", "../../outside")], "outside the target"),
    ([_link("link", "/etc/passwd")], "absolute path"),
    ([_link("a", "."), _link("c", "a/..")], "symlink to another symlink"),
    ([_link("model", ".."), ("model/evil", b"x")], "outside the target"),
    ([_link("sub", "."), ("sub/evil", b"x")], "goes through the symlink"),
    ([_link("hard", "../outside", tarfile.LNKTYPE)], "contains '..'"),
    ([_link("hard", "/etc/passwd", tarfile.LNKTYPE)], "absolute path"),
    ([_special("dev", tarfile.CHRTYPE)], "device file or fifo"),
    ([_special("blk", tarfile.BLKTYPE)], "device file or fifo"),
    ([_special("pipe", tarfile.FIFOTYPE)], "device file or fifo"),
])
def test_unsafe_tar_members_are_refused_before_writing(tmp_path, dest, members, why):
    archive = _tar(tmp_path / "bad.tar", [("model/first.txt", b"ok")] + members, mode="w")
    with pytest.raises(UnsafeArchiveError, match=why) as err:
        safe_extract(archive, str(dest))
    assert isinstance(err.value, DownloadError)
    assert "bad.tar" in str(err.value)
    assert os.listdir(dest) == []  # nothing written, not even the harmless first member
    assert not (tmp_path / "box" / "evil").exists() and not (tmp_path / "evil").exists()


def test_zip_is_unpacked(tmp_path, dest):
    path = tmp_path / "ok.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pkg/config.json", "{}")
        zf.writestr("__MACOSX/pkg/._config.json", "junk")
    safe_extract(str(path), str(dest))
    assert content_root(str(dest)) == str(dest / "pkg")


@pytest.mark.parametrize("name", ["../evil", "/abs/evil", "a/../../evil"])
def test_zip_escaping_names_are_refused(tmp_path, dest, name):
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok.txt", "fine")
        zf.writestr(name, "evil")
    with pytest.raises(UnsafeArchiveError):
        safe_extract(str(path), str(dest))
    assert os.listdir(dest) == []


def test_zip_symlink_is_refused(tmp_path, dest):
    path = tmp_path / "link.zip"
    info = zipfile.ZipInfo("link")
    info.external_attr = (0o120777 << 16)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(info, "../../outside")
    with pytest.raises(UnsafeArchiveError, match="symlink"):
        safe_extract(str(path), str(dest))


def test_corrupt_archive_is_a_clear_error(tmp_path, dest):
    path = tmp_path / "broken.tar.gz"
    path.write_bytes(b"this is not gzip")
    with pytest.raises(UnsafeArchiveError, match="not a readable tar archive"):
        safe_extract(str(path), str(dest))


def test_content_root_keeps_several_top_level_entries(tmp_path):
    (tmp_path / "params").mkdir()
    (tmp_path / "vocab.txt").write_text("a")
    assert content_root(str(tmp_path)) == str(tmp_path)


def test_is_archive():
    assert all(is_archive(n) for n in ("a.tar.gz", "a.TGZ", "a.tar", "a.zip", "a.tar.xz"))
    assert not any(is_archive(n) for n in ("vocab.txt", "model.safetensors", "a.gz"))
