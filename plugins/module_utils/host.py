# Copyright: nasai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only helpers the collection's modules share: files, mounts."""

from __future__ import annotations

import os
import re
import tempfile


def read_text(path, default=None, limit=1 << 20):
    """The text of a file (at most `limit` characters), or `default` when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read(limit)
    except OSError:
        return default


def nearest_existing(path, exists=os.path.exists):
    """`path` itself when it exists, else its nearest existing parent ("/" at the top, "." for a
    relative path none of whose parents exist)."""
    path = os.path.normpath(path)
    while not exists(path):
        parent = os.path.dirname(path)
        if parent in (path, ""):
            return parent or "."
        path = parent
    return path


# Directories of the operating system itself: no role puts the stack's data in (or at) them.
SYSTEM_DIRECTORIES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/run", "/sbin",
                      "/sys", "/usr")
SYSTEM_DIRECTORIES_EXACT = ("/", "/home", "/mnt", "/media", "/opt", "/root", "/srv", "/tmp", "/var", "/var/lib")


def unsafe_data_path(path):
    """Why `path` cannot hold the stack's data (it will be created and chowned), or "" when it can:
    relative, with a `..` part, the root, or in a system directory."""
    text = str(path)
    if not os.path.isabs(text):
        return "must be an absolute path"
    if ".." in text.split("/"):
        return "must not contain '..'"
    normal = os.path.normpath(text)
    if normal in SYSTEM_DIRECTORIES_EXACT or any(normal == d or normal.startswith(d + "/") for d in SYSTEM_DIRECTORIES):
        return "must not be the root or a system directory (%s)" % normal
    return ""


def unescape_mount_field(field):
    """A field of /proc/mounts with the kernel's octal escapes undone (\\040 blank, \\011 tab,
    \\012 newline, \\134 backslash); a backslash without three digits after it stays."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_entry(path, mounts_text):
    """(mount point, filesystem type, source) holding `path`: the longest matching /proc/mounts
    entry, the last one of equal length (the mount on top)."""
    best = ("/", "unknown", "unknown")
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = unescape_mount_field(fields[1])
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, fields[2], unescape_mount_field(fields[0]))
    return best


def mount_of(path, mounts_text):
    """(mount point, filesystem type) holding `path`: the longest matching /proc/mounts entry."""
    return mount_entry(path, mounts_text)[:2]


def parse_os_release(text):
    """{KEY: value} of an os-release(5) file's text (quotes removed)."""
    pairs = re.findall(r'(?m)^([A-Z_]+)=("?)(.*?)\2$', text or "")
    return {key: value for key, _quote, value in pairs}


def _fstab_line_is(line, key_index, key, kind):
    """Whether an fstab line (not a comment) has `key` in field `key_index` (and type `kind`, when given)."""
    parts = line.split()
    return (len(parts) > max(key_index, 2) and not parts[0].startswith("#") and parts[key_index] == key
            and (kind is None or parts[2] == kind))


def fstab_lines(text, key_index, key, kind=None):
    """The lines of `text` (an fstab) that fstab_entry manages for `key`."""
    return [line for line in text.splitlines() if _fstab_line_is(line, key_index, key, kind)]


def fstab_entry(text, fields, key_index, key, kind=None):
    """`text` (an fstab) with exactly one line whose field `key_index` is `key` (and, with `kind`,
    whose type field is `kind`): `fields` (src, path, type, opts, dump, passno) or, with `fields`
    None, none. Every other line, comments included, stays as it is; an equal line (whatever its
    spacing) leaves the text unchanged."""
    lines = text.splitlines(True)
    kept = [line for line in lines if not _fstab_line_is(line, key_index, key, kind)]
    if fields is None:
        return "".join(kept)
    wanted = " ".join(str(field) for field in fields)
    if [line.split() for line in fstab_lines(text, key_index, key, kind)] == [wanted.split()]:
        return text
    if kept and not kept[-1].endswith("\n"):
        kept[-1] += "\n"
    return "".join(kept + [wanted + "\n"])


def apply_attrs(path, uid, gid, mode):
    """Set owner, group and mode of `path`; None leaves each as it is."""
    if uid is not None or gid is not None:
        os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
    if mode is not None:
        os.chmod(path, mode)


def write_atomic(path, data, uid=None, gid=None, mode=None):
    """Write `data` (bytes) to `path` through a temporary file in the same directory and a rename,
    with owner, group and mode (0600 when None) set before the rename."""
    fd, tmp = tempfile.mkstemp(prefix=".nasai-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        apply_attrs(tmp, uid, gid, 0o600 if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_in_place(path, text):
    """Replace a file's text atomically keeping its mode (0644 for a new one), or in place where it
    cannot be renamed over (a bind mount)."""
    try:
        write_atomic(path, text.encode("utf-8"), mode=os.stat(path).st_mode & 0o7777 if os.path.exists(path) else 0o644)
    except OSError:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
