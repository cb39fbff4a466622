"""Run folders ``<logdir>/ppo/<task>/<savedir>``: where a run may write, who may write there, starting over safely.

* A folder named on the command line must resolve (symlinks and ``..`` followed) strictly inside the task
  folder; hidden names are reserved for the files below.
* A training run holds an exclusive lock on its folder: the file ``.<name>.lock`` next to it, holding the
  owner's pid and host. It appears atomically (written under a temporary name, then hard-linked into place,
  which fails if the lock exists) and its owner keeps an ``flock`` on it while alive, so the lock of a killed
  run is recognised as stale and taken over.
* Starting over (``--overwrite``, or rerunning a run that never saved a checkpoint) moves the old folder
  aside to ``.<name>.replaced`` and deletes it once the new run has saved its first checkpoint. A new run that
  fails before that gets the old folder back: at once, or at the next start if it was killed.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import shutil
import socket
import time
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

RUN_FILES = ("config.json", "summary.json", "eval_curve.csv")  # written by algos.trainer into a run folder
MODES = ("new", "resume", "overwrite", "auto")


class RunFolderError(ValueError):
    """A run folder cannot be used as asked (a usage error: one line, exit code 2)."""


def lock_path(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.lock"


def aside_path(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.replaced"


def inside(root: Path, name: str, flag: str) -> Path:
    """``root/name`` with symlinks and ``..`` resolved; refused unless it lies strictly inside ``root``."""
    root = Path(root).resolve()
    target = (root / name).resolve()  # an absolute name replaces root here, and is then refused below
    if target == root:
        raise RunFolderError(f"{flag} {name} names the task folder {root} itself: give a folder name inside it")
    if root not in target.parents:
        raise RunFolderError(f"{flag} {name} resolves to {target}, outside {root}: give a folder name inside it "
                             f"(no absolute paths, no '..' or symlinks leading out)")
    hidden = [part for part in target.relative_to(root).parts if part.startswith(".")]
    if hidden:
        raise RunFolderError(f"{flag} {name}: names starting with '.' are reserved for locks and replaced runs")
    return target


def check_writable(folder: Path, flag: str = "--logdir") -> None:
    """Refuse a ``folder`` that cannot be created or written, without creating anything."""
    folder = Path(folder).absolute()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise RunFolderError(f"{flag} {folder}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunFolderError(f"{flag} {folder}: {existing} is not writable by this user; choose another "
                             f"{flag} or fix its permissions")


def holds_run(folder: Path, checkpoint: str) -> bool:
    """Whether ``folder`` holds files of a training run."""
    return folder.is_dir() and (any((folder / name).exists() for name in (*RUN_FILES, checkpoint))
                                or any(folder.glob("events.out.tfevents.*")))


# -- the lock ----------------------------------------------------------------------------------------------
def _flock(fd: int) -> bool | None:
    """Try an exclusive flock: True taken, False held by someone else, None not supported here."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as err:
        if err.errno in (errno.ENOLCK, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS):
            return None
        raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _owner_text(owner: dict) -> str:
    since = time.strftime("%Y-%m-%d %H:%M", time.localtime(owner["started"])) if "started" in owner else "?"
    return f"pid {owner.get('pid', '?')} on host {owner.get('host', '?')}, since {since}"


class FolderLock:
    """Exclusive lock of one run folder (see the module docstring); use as a context manager."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = lock_path(self.folder)
        self.fd: int | None = None
        self.owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock or raise RunFolderError naming its owner; a dead owner's lock is taken over."""
        try:
            for _ in range(5):  # retried only when the lock file changes under us
                created = self._create()
                if created is None:  # no hard links on this file system
                    created = self._create_exclusive()
                if created or self._take_over():
                    return
        except OSError as err:
            raise RunFolderError(f"cannot write the lock file {self.path}: {err.strerror}; check --logdir") from None
        raise RunFolderError(f"could not take the lock {self.path}: it keeps changing; is another run starting?")

    def _create(self) -> bool | None:
        """Publish a new lock: True done, False one exists, None hard links unsupported."""
        tmp = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex}.tmp")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        published = False
        try:
            _flock(fd)  # held before the lock is visible, so no one ever sees it unheld while we live
            os.write(fd, json.dumps(self.owner).encode())
            os.fsync(fd)
            try:
                os.link(tmp, self.path)  # atomic: fails if the lock exists
            except FileExistsError:
                return False
            except OSError as err:
                if err.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                    return None
                raise
            self.fd, published = fd, True
            return True
        finally:
            if not published:
                os.close(fd)
            tmp.unlink(missing_ok=True)

    def _create_exclusive(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        _flock(fd)
        os.write(fd, json.dumps(self.owner).encode())
        os.fsync(fd)
        self.fd = fd
        return True

    def _take_over(self) -> bool:
        """The lock exists: take it if its owner is gone, refuse if alive; False = it changed, try again."""
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return False
        keep = False
        try:
            taken = _flock(fd)
            owner = _read_owner(fd)
            if taken is False:
                raise RunFolderError(self._busy(owner))
            try:
                if os.stat(self.path).st_ino != os.fstat(fd).st_ino:
                    return False  # released and recreated meanwhile
            except FileNotFoundError:
                return False
            same_host = owner.get("host") == self.owner["host"]
            pid = owner.get("pid")
            if taken is None and not (same_host and isinstance(pid, int) and not _pid_alive(pid)):
                raise RunFolderError(self._busy(owner))  # no flock here: only a dead local pid is provably stale
            if taken and not same_host and owner:
                raise RunFolderError(self._busy(owner) + f"; if no run is going on there, delete {self.path}")
            log.warning("taking over the stale lock of %s: its owner (%s) is no longer running", self.folder,
                        _owner_text(owner) if owner else "not recorded")
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(self.owner).encode(), 0)
            os.fsync(fd)
            self.fd, keep = fd, True
            return True
        finally:
            if not keep:
                os.close(fd)

    def _busy(self, owner: dict) -> str:
        return (f"run folder {self.folder} is in use by another training run ({_owner_text(owner)}); wait for it "
                f"to finish or choose another --savedir")

    def release(self) -> None:
        """Give the lock up (delete the file); safe to call twice."""
        if self.fd is None:
            return
        try:
            if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                self.path.unlink()
        except FileNotFoundError:
            pass
        finally:
            os.close(self.fd)
            self.fd = None


def _read_owner(fd: int) -> dict:
    try:
        owner = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (ValueError, UnicodeDecodeError):
        return {}
    return owner if isinstance(owner, dict) else {}


def lock_is_live(path: Path) -> dict | None:
    """The owner recorded in lock file ``path`` if a live process holds it, else None."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        if _flock(fd) is False:
            return _read_owner(fd) or {"pid": "?"}
        return None
    finally:
        os.close(fd)  # also drops the flock we may just have taken


# -- claiming run folders -------------------------------------------------------------------------------------
class RunFolders:
    """The folders one training command writes, locked for its lifetime (a context manager).

    On entry: the folders' parents are created, every folder is locked, an interrupted start-over is
    finished or undone, and unfinished checkpoint files are removed. On exit: the locks are released and
    folders created here that stayed empty are removed again.
    """

    def __init__(self, root: Path, folders: list[Path], checkpoint: str):
        self.root = Path(root).resolve()
        self.folders = [Path(f).resolve() for f in folders]
        self.checkpoint = checkpoint
        self._stack = contextlib.ExitStack()
        self._created: list[Path] = []

    def __enter__(self) -> RunFolders:
        try:
            for folder in self.folders:
                self._lock(folder)
                self._check_ancestors(folder)
            for folder in self.folders:
                self._recover(folder)
                from utils.checkpoint import remove_temp_files
                removed = remove_temp_files(folder, self.checkpoint) if folder.is_dir() else []
                if removed:
                    log.warning("removed %d unfinished checkpoint file(s) an interrupted save left in %s",
                                len(removed), folder)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()
        for folder in reversed(self._created):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if still empty
        self._created.clear()

    def _lock(self, folder: Path) -> None:
        for attempt in range(3):
            self._make_parents(folder.parent)
            try:
                self._stack.enter_context(FolderLock(folder))
                return
            except RunFolderError:
                if folder.parent.exists() or attempt == 2:  # else: another run removed the empty parent; again
                    raise

    def _make_parents(self, parent: Path) -> None:
        missing = []
        while not parent.exists() and parent != parent.parent:
            missing.append(parent)
            parent = parent.parent
        for folder in reversed(missing):
            try:
                folder.mkdir()
                self._created.append(folder)
            except FileExistsError:
                pass
            except OSError as err:
                raise RunFolderError(f"cannot create {folder}: {err.strerror}; check --logdir") from None

    def _check_ancestors(self, folder: Path) -> None:
        """Refuse a folder inside another run's folder (that run's --overwrite would take it along)."""
        for ancestor in folder.parents:
            if ancestor == self.root or self.root not in ancestor.parents:
                break
            owner = lock_is_live(lock_path(ancestor))
            if owner or holds_run(ancestor, self.checkpoint):
                busy = f" (in use by {_owner_text(owner)})" if owner else ""
                raise RunFolderError(f"{folder} lies inside the run folder {ancestor}{busy}; choose a --savedir "
                                     f"outside it")

    def _nested(self, folder: Path) -> list[Path]:
        """Subfolders of ``folder`` holding runs or live locks."""
        if not folder.is_dir():
            return []
        found = {p.parent for p in folder.rglob("*") if p.parent != folder and p.is_file()
                 and (p.name in (*RUN_FILES, self.checkpoint) or p.name.startswith("events.out.tfevents."))}
        found |= {p.parent / p.name[1:-len(".lock")] for p in folder.rglob(".*.lock") if lock_is_live(p)}
        return sorted(found)

    def _recover(self, folder: Path) -> None:
        """Finish or undo a start-over that was killed (see the module docstring)."""
        aside = aside_path(folder)
        if not aside.exists():
            return
        if (folder / self.checkpoint).exists():
            shutil.rmtree(aside)
            log.warning("deleted the run %s replaced (the new run there has its first checkpoint)", folder)
            return
        if folder.exists():
            shutil.rmtree(folder)
        os.rename(aside, folder)
        log.warning("put back the earlier run in %s: the run replacing it stopped before its first checkpoint",
                    folder)

    def plan(self, mode: str) -> list[str]:
        """What to do with each folder: 'fresh', 'resume', 'restart' (start over a run that never saved a
        checkpoint) or 'overwrite'. ``mode``: new (plain train), resume, overwrite, auto (resume if possible,
        as the sweep does). Raises RunFolderError when a folder cannot be used that way."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode}")
        actions = []
        for folder in self.folders:
            if folder.exists() and not folder.is_dir():
                raise RunFolderError(f"{folder} is a file, not a run folder: choose another --savedir")
            has_checkpoint = (folder / self.checkpoint).is_file()
            if mode in ("resume", "auto") and has_checkpoint:
                actions.append("resume")
                continue
            nested = self._nested(folder)
            if nested:
                names = ", ".join(str(p.relative_to(folder)) for p in nested[:3]) + (", ..." if len(nested) > 3 else "")
                raise RunFolderError(f"{folder} holds other runs in its subfolders ({names}); a run there would "
                                     f"mix with them (or, with --overwrite, delete them): choose another --savedir")
            if not holds_run(folder, self.checkpoint):
                actions.append("fresh")
            elif mode == "overwrite":
                actions.append("overwrite")
            elif has_checkpoint:  # mode new
                raise RunFolderError(f"{folder} already holds a run; pass --resume to continue it, --overwrite to "
                                     f"start over, or choose another --savedir")
            else:
                actions.append("restart")
        if mode == "resume" and "resume" not in actions and "restart" not in actions:
            raise RunFolderError(f"nothing to resume: no {self.checkpoint} in "
                                 f"{' or '.join(str(f) for f in self.folders)}")
        return actions

    @contextlib.contextmanager
    def start(self, folder: Path, action: str):
        """Run one folder's training inside this block; yields its :class:`Replacement`.

        The trainer calls ``begin()`` right before it writes and ``saved()`` after every checkpoint. When the
        block ends (or fails) before a first checkpoint, the earlier run is put back.
        """
        replacement = Replacement(Path(folder).resolve(), self.checkpoint, action in ("overwrite", "restart"),
                                  action == "restart")
        try:
            yield replacement
        finally:
            replacement.finish()


class Replacement:
    """Moving a run folder aside for a new run, and deleting or restoring it (see the module docstring)."""

    def __init__(self, folder: Path, checkpoint: str, replace: bool, restart: bool = False):
        self.folder, self.checkpoint, self.replace, self.restart = folder, checkpoint, replace, restart
        self.aside: Path | None = None

    def begin(self) -> None:
        """Move the old run aside (called once the new run has passed its checks, before it writes)."""
        if not self.replace or self.aside is not None or not self.folder.exists():
            return
        if self.restart:
            log.warning("%s holds a run that stopped before its first checkpoint: starting it over", self.folder)
        os.rename(self.folder, aside_path(self.folder))
        self.aside = aside_path(self.folder)

    def saved(self) -> None:
        """The new run has a checkpoint: the old one is not needed any more."""
        if self.aside is not None and (self.folder / self.checkpoint).exists():
            shutil.rmtree(self.aside, ignore_errors=True)
            self.aside = None

    def finish(self) -> None:
        """Delete the old run if the new one saved a checkpoint, else put the old one back."""
        self.saved()
        if self.aside is None:
            return
        if self.folder.exists():
            shutil.rmtree(self.folder)
        os.rename(self.aside, self.folder)
        self.aside = None
        log.info("the new run in %s stopped before its first checkpoint: the earlier run is back", self.folder)
