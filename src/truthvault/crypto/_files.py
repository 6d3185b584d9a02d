"""Files that hold secrets (a device's keys, AI providers' API keys, a backup key): written
atomically and readable by their owner alone from the moment they exist; read only when
neither group nor others can access them. One place for the rule, so every key file keeps it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from ..errors import InsecureKeyFile, InvalidInput

__all__ = ["read_private", "write_private"]


def write_private(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically, mode 0600 from creation (its folder 0700 when
    made here): written under a temporary name, flushed, then renamed over ``target``."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    # O_EXCL with mode 0600 at creation: the file is never group/other-readable, not even
    # between creation and a later chmod, and a planted file or symlink is not reused.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), 0o600)  # the umask could only have removed bits
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def read_private(target: Path, what: str, *, hint: str) -> bytes | None:
    """The bytes of ``target`` (``what`` names it in errors), None when there is no such file.
    InsecureKeyFile (with ``hint``) when group or others can access it; InvalidInput when it is
    not a regular file (a symlink is not followed)."""
    try:
        fd = os.open(target, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InvalidInput(f"cannot open {what} {target}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        # fstat on the open file, not stat on the path: nothing can swap the file in between.
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise InvalidInput(f"{what} {target} is not a regular file")
        if os.name == "posix" and st.st_mode & 0o077:
            raise InsecureKeyFile(
                f"{what} {target} is accessible by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); refusing to use it",
                hint=hint,
            )
        return f.read()


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX only; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
