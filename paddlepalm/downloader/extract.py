"""Safe extraction of tar/zip archives.

Every member is checked before anything is written: absolute names, ``..`` components,
devices, fifos, links that point outside the destination and members reached through a link
are refused with :class:`UnsafeArchiveError`. Where Python provides it, tar extraction also runs
with the ``'data'`` filter as a second line of defence.
"""
import os
import posixpath
import re
import stat
import tarfile
import zipfile
from typing import Iterable, Set

from paddlepalm.downloader.errors import UnsafeArchiveError

TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
ZIP_SUFFIXES = (".zip",)
_IGNORED_AT_ROOT = {"__MACOSX"}


def is_archive(filename: str) -> bool:
    """Whether ``filename`` has a tar or zip suffix this module can unpack."""
    return filename.lower().endswith(TAR_SUFFIXES + ZIP_SUFFIXES)


def safe_extract(archive: str, dest: str) -> None:
    """Unpack ``archive`` (tar.gz/tgz/tar/tar.bz2/tar.xz/zip) into the existing dir ``dest``."""
    if archive.lower().endswith(ZIP_SUFFIXES) or (
            not archive.lower().endswith(TAR_SUFFIXES) and zipfile.is_zipfile(archive)):
        _extract_zip(archive, dest)
    else:
        _extract_tar(archive, dest)


def content_root(directory: str) -> str:
    """``directory``, or its only sub-directory when the archive had one top-level folder."""
    names = [n for n in os.listdir(directory) if n not in _IGNORED_AT_ROOT]
    if len(names) == 1:
        only = os.path.join(directory, names[0])
        if os.path.isdir(only) and not os.path.islink(only):
            return only
    return directory


def _extract_tar(archive: str, dest: str) -> None:
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            _check_tar_members(archive, members)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, members=members, filter="data")
            else:  # Python without PEP 706; the checks above already cover these cases
                tar.extractall(dest, members=members)
    except tarfile.FilterError as e:  # pragma: no cover - our own checks come first
        raise UnsafeArchiveError("%s: refused member: %s" % (archive, e)) from None
    except (tarfile.TarError, EOFError) as e:
        raise UnsafeArchiveError("%s is not a readable tar archive: %s" % (archive, e)) from None


def _check_tar_members(archive: str, members: Iterable[tarfile.TarInfo]) -> None:
    links: Set[str] = set()
    for member in members:
        name = _checked_name(archive, member.name)
        _refuse_through_link(archive, member.name, name, links)
        if member.ischr() or member.isblk() or member.isfifo():
            _refuse(archive, member.name, "is a device file or fifo")
        if member.issym():
            target = member.linkname
            if _is_absolute(target):
                _refuse(archive, member.name, "is a symlink to the absolute path %r" % target)
            _check_link_target(archive, member.name,
                               posixpath.join(posixpath.dirname(name), target), links)
            links.add(name)
        elif member.islnk():
            target = _checked_name(archive, member.linkname, "hard link target of "
                                   + member.name)
            _refuse_through_link(archive, member.name, target, links, as_target=True)
        elif not (member.isfile() or member.isdir()):
            _refuse(archive, member.name, "has an unsupported member type")


def _extract_zip(archive: str, dest: str) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _checked_name(archive, info.filename)
                mode = (info.external_attr >> 16) & 0xFFFF
                if stat.S_ISLNK(mode):
                    _refuse(archive, info.filename, "is a symlink (not allowed in zip archives)")
                if mode and (stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode)):
                    _refuse(archive, info.filename, "is a device file or fifo")
            zf.extractall(dest)
    except zipfile.BadZipFile as e:
        raise UnsafeArchiveError("%s is not a readable zip archive: %s" % (archive, e)) from None


def _checked_name(archive: str, raw: str, what: str = "") -> str:
    """Normalized member name; refuses absolute names and ``..`` components."""
    label = what or raw
    if _is_absolute(raw):
        _refuse(archive, label, "has an absolute path (%r)" % raw)
    parts = re.split(r"[\\/]", raw)
    if ".." in parts:
        _refuse(archive, label, "contains '..' (%r)" % raw)
    return posixpath.normpath(raw.replace("\\", "/"))


def _refuse_through_link(archive: str, member: str, path: str, links: Set[str],
                         as_target: bool = False) -> None:
    """Refuse paths that pass through an earlier symlink member (link-chain escapes)."""
    parts = path.split("/")
    for i in range(1, len(parts) + (1 if as_target else 0)):
        if "/".join(parts[:i]) in links:
            _refuse(archive, member, "goes through the symlink %r" % "/".join(parts[:i]))


def _check_link_target(archive: str, member: str, joined: str, links: Set[str]) -> None:
    """Walk a symlink's target one component at a time; it must stay inside, link-free."""
    stack = []
    for part in joined.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                _refuse(archive, member, "is a symlink pointing outside the target directory")
            stack.pop()
            continue
        stack.append(part)
        if "/".join(stack) in links:
            _refuse(archive, member, "is a symlink to another symlink (%r)" % "/".join(stack))


def _is_absolute(path: str) -> bool:
    return path.startswith(("/", "\\")) or bool(re.match(r"^[A-Za-z]:", path))


def _refuse(archive: str, member: str, why: str) -> None:
    raise UnsafeArchiveError("refusing to unpack %s: member %r %s" % (archive, member, why))
