"""Where Sentinel's private files live (API tokens, operator keys, the trusted operators file),
who may change them, and how they are written.

One set of rules for all of them: the per-user configuration folder is
``$SENTINEL_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/sentinel``, else ``~/.config/sentinel``; a file
(or a folder on its way) that someone other than this user or root could change is refused,
naming the path, its mode and the fix.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

from sentinel.errors import SentinelConfigError

CONFIG_DIR_ENV = "SENTINEL_CONFIG_DIR"
#: Largest trust file read (thousands of operators are far smaller).
MAX_FILE = 1 << 20


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    """Sentinel's per-user configuration folder (the same rule as the API tokens file)."""
    env = os.environ if env is None else env
    explicit = env.get(CONFIG_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser().absolute()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser().absolute() / "sentinel"


def mode_text(st: os.stat_result) -> str:
    return f"{stat.S_IMODE(st.st_mode):04o}"


def unsafe(st: os.stat_result, what: str, path: Path, *, sticky_ok: bool = False) -> str | None:
    """Why ``st`` lets someone other than this user (or root) change ``path``, or None."""
    me = os.geteuid()
    if st.st_uid not in (me, 0):
        return (
            f"{what} {path} is owned by uid {st.st_uid}, not by this user (uid {me}) or root "
            f"(mode {mode_text(st)})"
        )
    if st.st_mode & 0o022 and not (sticky_ok and st.st_mode & stat.S_ISVTX):
        who = " and ".join(
            w for w, bit in (("group", 0o020), ("others", 0o002)) if st.st_mode & bit
        )
        return f"{what} {path} has mode {mode_text(st)}: writable by {who}"
    return None


def folder_problem(folder: Path, what: str = "folder") -> str | None:
    """Why ``folder`` (or a folder above it) lets another user replace what is in it, or None.
    Sticky folders such as /tmp are fine above, not as the folder itself. ``what`` names the
    folder itself in the answer."""
    real = Path(os.path.realpath(os.fspath(folder)))
    why = unsafe(os.stat(real), what, real)
    for above in real.parents:
        if why is not None:
            break
        why = unsafe(os.stat(above), "folder", above, sticky_ok=True)
    return why


def read_small(path: Path, what: str) -> tuple[bytes, os.stat_result]:
    """The bytes of the regular file ``path`` (never following a symlink at the last step, never
    hanging on a FIFO) and its stat. Raises FileNotFoundError, or SentinelConfigError naming it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SentinelConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SentinelConfigError(f"{what} {path} is not a regular file")
        chunks, size = [], 0
        while chunk := os.read(fd, 65536):
            size += len(chunk)
            if size > MAX_FILE:
                raise SentinelConfigError(f"{what} {path} is larger than {MAX_FILE} bytes")
            chunks.append(chunk)
    except OSError as exc:
        raise SentinelConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    return b"".join(chunks), st


def make_folder(folder: Path, mode: int) -> None:
    """Create ``folder`` (and missing parents) with exactly ``mode``, whatever the umask."""
    missing = (
        [folder, *(p for p in folder.parents if not p.exists())] if not folder.exists() else []
    )
    for made in reversed(missing):
        made.mkdir(mode=mode, exist_ok=True)
        os.chmod(made, mode)


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` by ``data`` all at once (temp file in the same folder, fsync, rename,
    fsync the folder): a reader sees the old file or the new one, never half of one."""
    folder = path.absolute().parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(folder))
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dfd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
