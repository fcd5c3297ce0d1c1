"""Safe extraction of tar/zip archives.

Every member is checked before anything is written: absolute names, ``..`` components,
devices, fifos, links that point outside the destination and members reached through a link
are refused with :class:`UnsafeArchiveError`. Where Python provides it, tar extraction also runs
with the ``'data'`` filter as a second line of defence.

Before anything is written the archive's declared sizes are also checked against
:class:`ExtractLimits` (total uncompressed bytes, member count, compression ratio) and against the
free space of the destination; a failure while writing (a full disk) raises
:class:`DownloadError` naming the archive, and whatever was unpacked is removed again.
"""
import errno
import os
import posixpath
import re
import shutil
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from typing import Iterable, List, Optional, Set

from paddlepalm.downloader.errors import DownloadError, UnsafeArchiveError

GIB = 1 << 30

TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
ZIP_SUFFIXES = (".zip",)
_IGNORED_AT_ROOT = {"__MACOSX"}


def is_archive(filename: str) -> bool:
    """Whether ``filename`` has a tar or zip suffix this module can unpack."""
    return filename.lower().endswith(TAR_SUFFIXES + ZIP_SUFFIXES)


@dataclass(frozen=True)
class ExtractLimits:
    """What an archive may unpack to; ``None`` switches a check off.

    The defaults leave room for the largest real checkpoints (BERT/ERNIE large with optimizer
    state is a few GB in a few hundred files, and float weights compress by well under 2x) while
    refusing archive bombs: ``max_ratio`` stops a small archive that inflates a thousandfold.
    ``min_free_bytes`` is kept free on the destination's disk beyond the unpacked size.
    """

    max_total_bytes: Optional[int] = 32 * GIB
    max_members: Optional[int] = 5000
    max_ratio: Optional[float] = 200.0
    min_free_bytes: int = 64 << 20


def safe_extract(archive: str, dest: str, limits: Optional[ExtractLimits] = None) -> None:
    """Unpack ``archive`` (tar.gz/tgz/tar/tar.bz2/tar.xz/zip) into the existing dir ``dest``.

    Raises :class:`UnsafeArchiveError` for a refused member or a limit of ``limits`` exceeded and
    :class:`DownloadError` when ``dest`` lacks the space or a write fails; in both cases what
    this call unpacked into ``dest`` is removed.
    """
    limits = limits or ExtractLimits()
    before = set(os.listdir(dest))
    try:
        if archive.lower().endswith(ZIP_SUFFIXES) or (
                not archive.lower().endswith(TAR_SUFFIXES) and zipfile.is_zipfile(archive)):
            _extract_zip(archive, dest, limits)
        else:
            _extract_tar(archive, dest, limits)
    except OSError as e:
        _remove_new(dest, before)
        what = "the disk is full" if e.errno in (errno.ENOSPC, errno.EDQUOT) else e.strerror or str(e)
        raise DownloadError("unpacking %s into %s failed: %s (%s); nothing was kept"
                            % (archive, dest, what, e)) from None
    except DownloadError:
        _remove_new(dest, before)
        raise


def free_bytes(path: str) -> int:
    """Free bytes on the file system holding ``path``."""
    return shutil.disk_usage(path).free


def _remove_new(dest: str, before: Set[str]) -> None:
    for name in set(os.listdir(dest)) - before:
        path = os.path.join(dest, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.remove(path)
            except OSError:
                pass


def _check_sizes(archive: str, dest: str, sizes: List[int], limits: ExtractLimits) -> None:
    """Refuse too many members, too many bytes or too high a ratio, or too little free space."""
    total = sum(sizes)
    if limits.max_members is not None and len(sizes) > limits.max_members:
        raise UnsafeArchiveError("refusing to unpack %s: it has %d members, more than the limit of %d "
                                 "(raise ExtractLimits.max_members if the archive is trusted)"
                                 % (archive, len(sizes), limits.max_members))
    if limits.max_total_bytes is not None and total > limits.max_total_bytes:
        raise UnsafeArchiveError("refusing to unpack %s: it unpacks to %s, more than the limit of %s "
                                 "(raise ExtractLimits.max_total_bytes if the archive is trusted)"
                                 % (archive, _size(total), _size(limits.max_total_bytes)))
    packed = max(os.path.getsize(archive), 1)
    if limits.max_ratio is not None and total > (1 << 20) and total / packed > limits.max_ratio:
        raise UnsafeArchiveError("refusing to unpack %s: %s would unpack to %s, %.0f times its size "
                                 "(limit %gx; an archive bomb? raise ExtractLimits.max_ratio if the "
                                 "archive is trusted)" % (archive, _size(packed), _size(total),
                                                          total / packed, limits.max_ratio))
    free = free_bytes(dest)
    if total + limits.min_free_bytes > free:
        raise DownloadError("not enough free space to unpack %s into %s: it needs %s (plus %s kept "
                            "free), %s are free" % (archive, dest, _size(total),
                                                    _size(limits.min_free_bytes), _size(free)))


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return ("%d %s" if unit == "bytes" else "%.1f %s") % (n, unit)
        n /= 1024.0
    return "%d" % n  # pragma: no cover


def content_root(directory: str) -> str:
    """``directory``, or its only sub-directory when the archive had one top-level folder."""
    names = [n for n in os.listdir(directory) if n not in _IGNORED_AT_ROOT]
    if len(names) == 1:
        only = os.path.join(directory, names[0])
        if os.path.isdir(only) and not os.path.islink(only):
            return only
    return directory


def _extract_tar(archive: str, dest: str, limits: ExtractLimits) -> None:
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = _tar_members(tar, archive, limits)
            _check_tar_members(archive, members)
            _check_sizes(archive, dest, [m.size for m in members if m.isfile()], limits)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, members=members, filter="data")
            else:  # Python without PEP 706; the checks above already cover these cases
                tar.extractall(dest, members=members)
    except tarfile.FilterError as e:  # pragma: no cover - our own checks come first
        raise UnsafeArchiveError("%s: refused member: %s" % (archive, e)) from None
    except (tarfile.TarError, EOFError) as e:
        raise UnsafeArchiveError("%s is not a readable tar archive: %s" % (archive, e)) from None


def _tar_members(tar: tarfile.TarFile, archive: str, limits: ExtractLimits) -> List[tarfile.TarInfo]:
    """The members, read one header at a time so that a huge member list stops at the limit."""
    members = []
    for member in tar:
        members.append(member)
        if limits.max_members is not None and len(members) > limits.max_members:
            raise UnsafeArchiveError("refusing to unpack %s: it has more than %d members, the limit "
                                     "(raise ExtractLimits.max_members if the archive is trusted)"
                                     % (archive, limits.max_members))
    return members


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


def _extract_zip(archive: str, dest: str, limits: ExtractLimits) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:
                _checked_name(archive, info.filename)
                mode = (info.external_attr >> 16) & 0xFFFF
                if stat.S_ISLNK(mode):
                    _refuse(archive, info.filename, "is a symlink (not allowed in zip archives)")
                if mode and (stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode)):
                    _refuse(archive, info.filename, "is a device file or fifo")
            _check_sizes(archive, dest, [i.file_size for i in infos if not i.is_dir()], limits)
            zf.extractall(dest)  # zipfile stops each member at its declared size
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
