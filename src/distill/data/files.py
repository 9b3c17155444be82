"""Making sure a dataset's files are on disk: check, download with a progress bar and checksum, or explain.

Downloads go to a temporary file that is renamed into place only after its checksum matches, so an interrupted or
corrupted download never leaves a file that looks complete. Set DISTILL_OFFLINE=1 to never touch the network.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from distill.errors import DistillError

if TYPE_CHECKING:
    from distill.data import DatasetSpec


@dataclass(frozen=True)
class DataFile:
    """One standard file of a dataset: its path inside the dataset folder, where to fetch it, and its md5."""

    name: str
    url: str | None
    md5: str | None


def cache_root() -> Path:
    """The cache folder ($DISTILL_CACHE, else ~/.cache/distill/models): networks trained on the full data, expert
    trajectories, and a user's decoded images (`decoded/`)."""
    env = os.environ.get("DISTILL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "distill" / "models"


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(item: DataFile, destination: Path) -> None:
    """Fetch `item.url` to `destination`, verifying the md5 before the file appears under its real name."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=destination.parent, prefix=".part-")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(item.url, timeout=20) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {Path(item.name).name}") as bar:
                for chunk in iter(lambda: response.read(1 << 16), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
        if item.md5 and md5sum(tmp) != item.md5:
            raise DistillError(f"downloaded {item.url} but its md5 does not match {item.md5}; try again later")
        os.replace(tmp, destination)
    finally:
        tmp.unlink(missing_ok=True)


def _missing_message(spec: DatasetSpec, folder: Path, missing: list[str], reason: str) -> str:
    names = ", ".join(missing)
    return (
        f"{spec.name}: missing {names} in {folder} ({reason}); put the standard files there, "
        f"or point --data-root / DISTILL_DATA at a folder that has a '{spec.folder}' sub-folder with them"
    )


def _extract_safely(tar: tarfile.TarFile, folder: Path) -> None:
    """Unpack with tarfile's 'data' filter (nothing outside `folder`, no links out, no devices). Pythons before
    3.10.12 / 3.11.4 have no filters; there the members are checked by hand: plain files and folders inside
    `folder` only."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(folder, filter="data")
        return
    root = folder.resolve()
    for member in tar.getmembers():
        target = (folder / member.name).resolve()
        if not (member.isfile() or member.isdir()) or root not in (target, *target.parents):
            raise tarfile.TarError(f"refusing archive member {member.name!r}: not a plain file inside {folder}")
    tar.extractall(folder)


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders this attempt made, deepest first, stopping at the first that is not empty."""
    for path in folders:
        try:
            path.rmdir()
        except OSError:
            return


def ensure_files(spec: DatasetSpec, folder: Path, download: bool = True) -> None:
    """Raise a clear `DistillError` unless every file of `spec` is in `folder`; fetch what is missing if allowed."""
    missing = [item for item in spec.files if not (folder / item.name).is_file()]
    if not missing:
        return
    names = [item.name for item in missing]
    if os.environ.get("DISTILL_OFFLINE") == "1":
        download = False
    fetchable = all(item.url for item in missing) or spec.archive is not None
    if not download or not fetchable:
        reason = "downloads are off" if fetchable else "this dataset has no download source"
        raise DistillError(_missing_message(spec, folder, names, reason))
    made = [path for path in (folder, *folder.parents) if not path.exists()]  # deepest first
    try:
        if spec.archive is not None and not all(item.url for item in missing):
            archive_path = folder / spec.archive.name
            if not archive_path.is_file():
                _download(spec.archive, archive_path)
            with tarfile.open(archive_path) as tar:
                _extract_safely(tar, folder)
        else:
            for item in missing:
                _download(item, folder / item.name)
    except (OSError, tarfile.TarError) as exc:
        _remove_empty(made)  # a failed download leaves no empty folders behind in the data root
        raise DistillError(_missing_message(spec, folder, names, f"download failed: {exc}")) from None
    still_missing = [item.name for item in spec.files if not (folder / item.name).is_file()]
    if still_missing:
        raise DistillError(_missing_message(spec, folder, still_missing, "the download did not contain them"))
