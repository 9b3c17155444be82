"""The output folder of a run: what it writes there, and holding the folder for the run's whole length so that no
other run writes into it and no user result is replaced unasked."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from distill.errors import DistillError
from distill.loop import CHECKPOINT_NAME

SYNSET_NAME = "synset.safetensors"
AS_DISTILLED_NAME = "synset-as-distilled.safetensors"  # beside a set given teacher labels: its own labels, so that
# another blend (`distill relabel`, experiments/teacher_sweep.py) starts from the set as distilled, not from a blend
OUTPUT_NAMES = (SYNSET_NAME, AS_DISTILLED_NAME, "grid.png", "val_curve.png", "summary.json")


LOCK_NAME = ".distill.lock"  # in an output folder while a run uses it; says the run's process id and host
LOCK_TRIES = 5  # takes of a lock file that other runs remove between our open and our lock, before giving up


@contextmanager
def prepare_output(out: Path | None, force: bool, resume: bool) -> Iterator[None]:
    """Hold `out` for a run (`with prepare_output(...):` around all of its work): make sure it can take the run's
    files, that we are not about to replace a user's result unasked, and that no other run is using it. Two runs
    into one folder used to both do all their work and end with one's set beside the other's checkpoint; now the
    run holds a lock on the folder's LOCK_NAME (see hold_lock) for as long as it lasts, and a second run is refused
    at once. The lock goes when the run ends, however it ends, and so do the folders made here where the run left
    them empty: a run that fails before its first file leaves no empty folder behind. Without `out` (a run kept in
    memory) there is nothing to hold, and nothing to resume."""
    if out is None:
        if resume:
            raise DistillError("--resume needs the output folder of the run to continue")
        yield
        return
    if force and resume:
        raise DistillError("--resume and --force exclude each other: --resume continues the run in the output "
                           "folder, --force replaces it")
    if out.exists() and not out.is_dir():
        raise DistillError(f"output folder {out} is a file")
    check_writable(out)
    made = make_folders(out)
    try:
        with hold_lock(out):
            if resume and not (out / CHECKPOINT_NAME).is_file():
                raise DistillError(f"--resume: no checkpoint at {out / CHECKPOINT_NAME}, so nothing to continue; "
                                   "drop --resume to start this run afresh")
            existing = [name for name in (*OUTPUT_NAMES, CHECKPOINT_NAME) if (out / name).exists()]
            if existing and not (force or resume):
                raise DistillError(f"{out} already holds a run ({', '.join(existing)}); pass --force (force=True) "
                                   "to replace it or --resume (resume=True) to continue it")
            yield
    finally:
        for folder in made:  # the deepest first; one holding anything stays
            try:
                folder.rmdir()
            except OSError:
                break


def make_folders(out: Path) -> list[Path]:
    """Make `out` and the folders above it that are missing; returns those made, the deepest first."""
    missing = []
    folder = out.absolute()
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        folder.mkdir(exist_ok=True)
    return missing


@contextmanager
def hold_lock(out: Path) -> Iterator[None]:
    """Hold `out`/LOCK_NAME for the `with` block, or refuse in one line while another run holds it. The lock is
    an advisory lock the kernel holds for our open file (flock; msvcrt.locking on Windows), so it dies with its
    process, however that ends (SIGKILL included): a lock file left by a dead run is free to take, with no guessing
    from the process id it names (a reused id made such a lock look alive forever), and no removing it to take it
    over (two runs doing that at once could both go on). The file's text ("pid host") only names the holder in the
    refusal. On release the file is removed while still locked, then closed: a run that opened it just before
    finds, once its lock is granted, that the path no longer names the file it locked, and opens it afresh."""
    lock = out / LOCK_NAME
    handle = take_lock(lock)
    try:
        yield
    finally:
        release_lock(lock, handle)


def take_lock(lock: Path) -> int:
    """Open and lock `lock`, returning the open file, with this process's id and host written in it."""
    for _ in range(LOCK_TRIES):
        try:
            handle = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise DistillError(f"{lock.parent}: cannot open its lock file {lock}: {error.strerror}") from None
        try:
            held = lock_file(handle)
            if held and names_file(lock, handle):
                os.ftruncate(handle, 0)
                os.write(handle, f"{os.getpid()} {socket.gethostname()}\n".encode())
                return handle
        except BaseException:
            os.close(handle)
            raise
        os.close(handle)
        if not held:
            holder = lock_holder(lock)
            raise DistillError(f"{lock.parent} is in use by another run{f' ({holder})' if holder else ''}: wait "
                               "for it to end, or give another --out")
    raise DistillError(f"{lock.parent}: could not lock {lock}: other runs kept replacing it; try again")


def lock_file(handle: int) -> bool:
    """Take the kernel's exclusive lock on an open file without waiting; False when another open file holds it.
    On Windows the lock covers the file's first byte, which makes the holder's text unreadable to others there."""
    if os.name == "nt":
        import msvcrt
        try:
            msvcrt.locking(handle, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def names_file(path: Path, handle: int) -> bool:
    """Whether `path` still names the open file `handle` (a holder's release may have removed it meanwhile)."""
    try:
        return os.stat(path).st_ino == os.fstat(handle).st_ino
    except FileNotFoundError:
        return False


def release_lock(lock: Path, handle: int) -> None:
    """Remove the lock file while still holding its lock, then close it, which lets the lock go. A file that cannot
    be removed stays, harmless: nobody holds it. Windows removes no open file, so there the lock is let go and the
    file closed first, and a file that another run has opened meanwhile stays."""
    if os.name == "nt":
        import msvcrt
        try:
            os.lseek(handle, 0, os.SEEK_SET)  # the locked byte
            msvcrt.locking(handle, msvcrt.LK_UNLCK, 1)
        finally:
            os.close(handle)
        try:
            lock.unlink(missing_ok=True)
        except OSError:
            pass
        return
    try:
        if names_file(lock, handle):
            lock.unlink()
    except OSError:
        pass
    finally:
        os.close(handle)


def lock_holder(lock: Path) -> str:
    """What a lock file says of its run ("process 123 on host"), or "" when it cannot be read."""
    try:
        pid, host = lock.read_text().split()
    except (OSError, ValueError):
        return ""
    return f"process {pid} on {host}"


def check_writable(folder: Path) -> None:
    """Refuse a folder that files cannot be written into: the folder itself where it exists, else the nearest
    folder above it that does (where it and its parents would be made)."""
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise DistillError(f"cannot make {folder}: {existing} is a file")
    try:  # a real file, not os.access: that says yes to root even where nothing can be created (/proc)
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise DistillError(f"cannot write to {folder}: {existing} does not take new files "
                           f"({exc.strerror or exc})") from None


def check_output_file(out: Path, force: bool) -> None:
    """A single output file (`distill relabel --out`): not a folder, not a file already there unless `force`, and
    in a folder that can be written; checked before any data is read or any network trained."""
    if out.is_dir():
        raise DistillError(f"{out} is a folder; give the file to write, e.g. {out / 'relabelled.safetensors'}")
    if out.exists() and not force:
        raise DistillError(f"{out} exists; pass --force (force=True) to replace it")
    check_writable(out.parent)

