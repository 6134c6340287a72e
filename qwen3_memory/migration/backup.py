"""Consistent online backups of the memory (database, vector files, settings) and their restore.

A migration rewrites many vectors, so it starts from a backup. The backup is taken while the bot
keeps writing: SQLite's online backup API copies one consistent snapshot of the database from a
separate connection (WAL readers never block the bot's writer). The FAISS files are derived data:
a file copied a moment before or after the snapshot is simply rebuilt from the database when its
count or generation does not match.

A backup is one directory::

    <backups_dir>/<label>/<label>_backup_YYYYMMDD_HHMMSS/   (UTC; "_2", "_3"... if taken twice a second)
        memory.db        the snapshot, journal mode DELETE: one self-contained file
        vectors/...      the index files
        settings/<name>  the settings file, when the settings came from one
        manifest.json    written last and atomically: each file's path, size and sha256

It is written as ``<name>.partial/`` (with a ``.writer`` file naming the process) and renamed to
``<name>/`` once the manifest is in it, so completeness is decidable: a ``.partial`` directory whose
writer is gone, or a directory without ``manifest.json``, is a half-written backup. It is never
restored, :func:`list_backups` marks it incomplete, :func:`clean_incomplete_backups` removes it, and
a new backup of the same label removes its own stale ones.

Restore is meant to run with the bot **stopped**: it replaces the database file under any open
connection. It installs only what the manifest lists, from inside the backup directory, and only
after every listed file's sha256 matched: it refuses a file the manifest does not list, a path that
leaves the backup directory (``..``, absolute, a link), a damaged file and a database in use, before
it touches anything. The data it replaces is moved aside (itself a restorable backup), not deleted.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import logging
import os
import shutil
import socket
import sqlite3
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from qwen3_memory.backends.sqlite.index import IndexParams
from qwen3_memory.backends.sqlite.schema import SCHEMA_VERSION
from qwen3_memory.backends.sqlite.store import DeletionLedger, SQLiteStore, read_deletion_ledger
from qwen3_memory.errors import UserFacingError, disk_full
from qwen3_memory.settings import Settings

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
VECTORS_DIR = "vectors"
SETTINGS_DIR = "settings"
PRE_RESTORE_PREFIX = "pre_restore_"
PARTIAL_SUFFIX = ".partial"  # a backup being written; renamed without it once its manifest is in place
WRITER_NAME = ".writer"  # in a .partial directory: the process writing it (pid, host)
FOREIGN_WRITER_GRACE_S = 3600.0  # a .partial written from another host counts as in progress this long
SNAPSHOT_TIMEOUT_S = 30.0  # how long the snapshot connection waits for a lock (WAL readers rarely wait)
LOCK_PROBE_TIMEOUT_S = 0.5  # how long restore waits to learn whether another process holds the database
_CHUNK = 1 << 20
_SIDE_FILES = ("-wal", "-shm", "-journal")


class BackupError(UserFacingError):
    """A backup cannot be made or restored (nothing to back up, the database is in use, ...)."""


class BackupDamaged(BackupError):
    """The backup fails verification (missing manifest or file, size or checksum differs); nothing was changed."""


@dataclass(frozen=True)
class BackupInfo:
    """One backup directory as :func:`list_backups` sees it."""

    path: Path
    label: str
    created: datetime
    size: int
    ok: bool
    problems: tuple[str, ...] = ()
    complete: bool = True  # False: the backup was never finished (killed midway), see ``why``
    why: str = ""  # why it is incomplete
    in_progress: bool = False  # a backup being written right now (its writer is alive)

    @property
    def status(self) -> str:
        if self.in_progress:
            return "in progress"
        if self.ok:
            return "ok"
        return "incomplete" if self.path.name.endswith(PARTIAL_SUFFIX) else "damaged"

    @property
    def removable(self) -> bool:
        """Whether :func:`clean_incomplete_backups` removes it: half-written, not being written, and not a
        pre-restore copy (that one holds the data a restore replaced)."""
        return not self.complete and not self.in_progress and not self.path.name.startswith(PRE_RESTORE_PREFIX)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "label": self.label,
            "created": self.created.isoformat(timespec="seconds"),
            "size": self.size,
            "status": self.status,
            "ok": self.ok,
            "complete": self.complete,
            "why": self.why,
            "problems": list(self.problems),
        }

    def render(self) -> str:
        """One line for the ``backups`` command."""
        size = f"{self.size / 2**20:.1f} MiB"
        note = f": {self.why or self.problems[0]}" if (self.why or self.problems) and not self.ok else ""
        return f"{self.status:<11} {self.created:%Y-%m-%d %H:%M:%S} {size:>10}  {self.path}{note}"


# ---------------------------------------------------------------------------------------------- create
async def create_backup(settings: Settings, label: str = "qwen3_migration") -> Path:
    """Back up the database, the vectors and the settings file; returns the backup directory.

    Safe while the bot runs: the database copy is one snapshot taken through the online backup API.
    """
    _check_label(label)
    if not settings.database_path.is_file():
        raise BackupError(
            f"{settings.database_path}: no memory database to back up (check memory_system.paths.database)"
        )
    return await asyncio.to_thread(_create_backup_sync, settings, label)


def _check_label(label: str) -> None:
    if not label or label in (".", "..") or any(c in label for c in "/\\\0") or label.startswith(PRE_RESTORE_PREFIX):
        raise BackupError(f"invalid backup label {label!r}: use letters, digits, '_' or '-'")


def _create_backup_sync(settings: Settings, label: str) -> Path:
    created = datetime.now(UTC)
    parent = settings.backups_dir / label
    _remove_stale_partials(parent)
    final = _new_dir(parent, f"{label}_backup_{created:%Y%m%d_%H%M%S}", partial=True)
    dest = final.with_name(final.name + PARTIAL_SUFFIX)
    try:
        _write_json_atomic(dest / WRITER_NAME, {"pid": os.getpid(), "host": socket.gethostname()})
        db_name = settings.database_path.name
        check = _snapshot_database(settings.database_path, dest / db_name)
        if check != "ok":
            log.warning("the database snapshot in %s fails quick_check: %s", dest, check)
        _copy_tree(settings.vectors_dir, dest / VECTORS_DIR)
        settings_rel = None
        if settings.source is not None and settings.source.is_file():
            settings_rel = f"{SETTINGS_DIR}/{settings.source.name}"
            _copy_file(settings.source, dest / settings_rel)
        manifest = {
            "format": MANIFEST_FORMAT,
            "label": label,
            "created_at": created.isoformat(timespec="seconds"),
            "schema_version": _schema_version(dest / db_name),
            "database": db_name,
            "database_check": check,
            "vectors": VECTORS_DIR,
            "settings": settings_rel,
            "sources": {
                "database": str(settings.database_path),
                "vectors_dir": str(settings.vectors_dir),
                "settings": str(settings.source) if settings.source else None,
            },
            "files": _describe_files(dest),
        }
        (dest / WRITER_NAME).unlink()
        _write_json_atomic(dest / MANIFEST_NAME, manifest)  # last: a backup with it is complete
        os.rename(dest, final)
        _fsync_dir(parent)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)  # a .partial is never restored anyway
        raise
    log.info("backup written to %s", final)
    return final


def _new_dir(parent: Path, name: str, *, partial: bool = False) -> Path:
    """Create ``parent/name`` (or ``name_2``, ``name_3``...): never reuse an existing directory.

    ``partial``: create ``<that>.partial`` instead (when neither it nor the finished name exists) and
    return the finished name, for the caller to rename to at the end.
    """
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = parent / (name if n == 1 else f"{name}_{n}")
        try:
            if partial:
                if path.exists():
                    continue
                path.with_name(path.name + PARTIAL_SUFFIX).mkdir()
            else:
                path.mkdir()
        except FileExistsError:
            continue
        return path
    raise BackupError(f"{parent}: too many directories named {name}*; remove old ones")


def _partial_in_progress(path: Path) -> bool:
    """Whether the ``.partial`` backup ``path`` is being written right now (its writer is alive)."""
    try:
        writer = json.loads((path / WRITER_NAME).read_text(encoding="utf-8"))
        pid, host = int(writer["pid"]), str(writer["host"])
    except (OSError, ValueError, KeyError, TypeError):  # no writer file: killed before it, or finished
        return False
    if host != socket.gethostname():  # cannot see that process: trust a recent one
        return time.time() - path.stat().st_mtime < FOREIGN_WRITER_GRACE_S
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _remove_stale_partials(parent: Path) -> None:
    """Remove this label's half-written backups whose writer is gone (a backup killed midway)."""
    if not parent.is_dir():
        return
    for path in parent.iterdir():
        if path.name.endswith(PARTIAL_SUFFIX) and path.is_dir() and not _partial_in_progress(path):
            log.warning("removing %s: a backup that never finished", path)
            shutil.rmtree(path, ignore_errors=True)


def _snapshot_database(source: Path, target: Path) -> str:
    """Copy one consistent snapshot of ``source`` into ``target``; returns ``PRAGMA quick_check`` of the copy."""
    src = sqlite3.connect(source, timeout=SNAPSHOT_TIMEOUT_S, isolation_level=None)
    try:
        dst = sqlite3.connect(target, isolation_level=None)
        try:
            src.backup(dst)  # pages=-1: one step, so one read transaction = one snapshot
            dst.execute("PRAGMA journal_mode=DELETE")  # a single file, no -wal beside it
            check = str(dst.execute("PRAGMA quick_check").fetchone()[0])
        finally:
            dst.close()
    except sqlite3.DatabaseError as exc:
        if disk_full(exc) is not None:  # the copy's disk, not the database: "database or disk is full"
            raise OSError(errno.ENOSPC, "No space left on device", str(target)) from None
        raise BackupError(f"{source}: cannot read the database for a backup ({exc})") from None
    finally:
        src.close()
    _fsync_file(target)
    return check


def _schema_version(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0)
    except sqlite3.DatabaseError:
        return 0
    finally:
        conn.close()


def _copy_tree(source: Path, target: Path) -> None:
    """Copy every finished file under ``source`` (``*.tmp`` files are half-written index saves)."""
    target.mkdir(parents=True, exist_ok=True)
    if not source.is_dir():
        return
    for path in sorted(_walk_files(source)):
        if path.name.endswith(".tmp"):
            continue
        try:
            _copy_file(path, target / path.relative_to(source))
        except FileNotFoundError:  # removed since the listing: derived data, rebuilt if needed
            continue


def _copy_file(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    _fsync_file(target)


# ---------------------------------------------------------------------------------------------- manifest
def _walk_files(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            yield Path(dirpath) / name


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _describe_files(root: Path) -> list[dict[str, Any]]:
    files = []
    for path in sorted(_walk_files(root)):
        rel = path.relative_to(root).as_posix()
        if rel in (MANIFEST_NAME, MANIFEST_NAME + ".tmp", WRITER_NAME, WRITER_NAME + ".tmp"):
            continue
        files.append({"path": rel, "size": path.stat().st_size, "sha256": _sha256(path)})
    return files


def _write_json_atomic(path: Path, data: Any) -> None:
    """Write ``path`` so that it either exists complete or not at all (tmp, fsync, rename, fsync dir)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The backup's manifest; :class:`BackupDamaged` if it is missing or malformed."""
    manifest, problem = _read_manifest(Path(path))
    if problem:
        raise BackupDamaged(_damaged_message(Path(path), [problem]))
    return manifest


def _read_manifest(path: Path) -> tuple[dict[str, Any], str]:
    """(manifest, "") or ({}, the problem)."""
    file = path / MANIFEST_NAME
    if not path.is_dir():
        return {}, f"{path}: not a directory"
    if not file.is_file():
        return {}, f"{MANIFEST_NAME} is missing: the backup never finished (interrupted?)"
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {}, f"{MANIFEST_NAME} is unreadable ({exc})"
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        return {}, f"{MANIFEST_NAME} has no file list"
    if manifest.get("format", 0) > MANIFEST_FORMAT:
        return {}, f"{MANIFEST_NAME} has format {manifest.get('format')}, newer than this code: upgrade qwen3-memory"
    for entry in manifest["files"]:
        if not _valid_entry(entry):
            return {}, f"{MANIFEST_NAME} has a malformed file entry or a path outside the backup: {entry!r}"
    for key in ("database", "vectors"):
        if key in manifest and manifest[key] is not None and not _inside_path(manifest[key]):
            return {}, (
                f"{MANIFEST_NAME} names {manifest[key]!r} as its {key}, a path outside the backup directory "
                "(the manifest was edited?)"
            )
    return manifest, ""


def _inside_path(rel: Any) -> bool:
    """Whether ``rel`` is a relative path that stays inside the directory it is joined to (no ``..``)."""
    if not isinstance(rel, str) or not rel or "\\" in rel or "\0" in rel:
        return False
    pure = PurePosixPath(rel)
    return not pure.is_absolute() and ".." not in pure.parts and bool(pure.parts)


def _valid_entry(entry: Any) -> bool:
    if not isinstance(entry, dict) or not _inside_path(entry.get("path")):
        return False
    return isinstance(entry.get("size"), int) and isinstance(entry.get("sha256"), str)


def verify_backup(path: str | os.PathLike[str], *, checksums: bool = True) -> list[str]:
    """Problems that make the backup unsafe to restore (empty: it is intact).

    A half-written backup (``.partial``), a file the manifest does not list, a link and a listed path
    that resolves outside the backup are problems, as are a missing file and a size (and with
    ``checksums``, a sha256) that differs. ``checksums=False`` is fast, for listings; restore hashes.
    """
    path = Path(path)
    if path.name.endswith(PARTIAL_SUFFIX):
        return [f"{path.name} is a half-written backup: it never finished (killed midway?)"]
    manifest, problem = _read_manifest(path)
    if problem:
        return [problem]
    problems = []
    listed = {entry["path"] for entry in manifest["files"]}
    if manifest.get("database") not in listed:
        problems.append(f"{MANIFEST_NAME} lists no database file")
    problems.extend(_strays(path, listed))
    for entry in manifest["files"]:
        problems.extend(_check_entry(path, entry, checksums))
    return problems


def _strays(root: Path, listed: set[str]) -> list[str]:
    """Files the manifest does not list, and links (a backup holds only plain files it lists)."""
    problems = []
    for dirpath, dirs, files in os.walk(root):  # never follows a link to a directory
        base = Path(dirpath)
        for name in sorted(dirs + files):
            file = base / name
            rel = file.relative_to(root).as_posix()
            if file.is_symlink():
                problems.append(f"{rel} is a link; a backup holds only plain files (remove the link)")
            elif name in files and rel not in listed and rel != MANIFEST_NAME:
                problems.append(
                    f"{rel} is not listed in {MANIFEST_NAME} (added after the backup was made?); "
                    "remove it if you put it there"
                )
    return problems


def _check_entry(root: Path, entry: dict[str, Any], checksums: bool) -> list[str]:
    file = root / entry["path"]
    if not file.is_file():
        return [f"{entry['path']} is missing"]
    if not file.resolve().is_relative_to(root.resolve()):
        return [f"{entry['path']} resolves outside the backup directory (through a link)"]
    size = file.stat().st_size
    if size != entry["size"]:
        return [f"{entry['path']} has {size} bytes, the manifest says {entry['size']}"]
    if checksums and _sha256(file) != entry["sha256"]:
        return [f"{entry['path']} is damaged (its sha256 differs from the manifest)"]
    return []


def _damaged_message(path: Path, problems: list[str]) -> str:
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return (
        f"backup {path} cannot be restored: {problems[0]}{more}. Nothing was changed; "
        "pick another backup (list them with the backups command)"
    )


# ---------------------------------------------------------------------------------------------- list
def list_backups(settings: Settings, *, checksums: bool = True) -> list[BackupInfo]:
    """Every backup under ``backups_dir`` (labelled ones, pre-restore copies and half-written ones), newest
    first. A half-written one is ``complete=False`` with ``why``."""
    root = settings.backups_dir
    if not root.is_dir():
        return []
    infos = [_backup_info(path, checksums) for path in _backup_dirs(root)]
    return sorted(infos, key=lambda info: info.created, reverse=True)


def clean_incomplete_backups(settings: Settings) -> list[Path]:
    """Remove every half-written backup (killed midway) that nothing is writing now; returns them.

    A pre-restore copy without a manifest is kept: it holds the data a restore replaced.
    """
    removed = []
    for info in list_backups(settings, checksums=False):
        if info.removable:
            shutil.rmtree(info.path)
            log.info("removed %s: %s", info.path, info.why)
            removed.append(info.path)
    return removed


def _backup_dirs(root: Path) -> list[Path]:
    """Directories that are (or were meant to be) backups: one level down (pre-restore) or two (labelled)."""
    found = []
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        if _looks_like_backup(child):
            found.append(child)
            continue
        found.extend(sub for sub in sorted(child.iterdir()) if sub.is_dir() and _looks_like_backup(sub))
    return found


def _looks_like_backup(path: Path) -> bool:
    return (path / MANIFEST_NAME).exists() or "_backup_" in path.name or path.name.startswith(PRE_RESTORE_PREFIX)


def _backup_info(path: Path, checksums: bool) -> BackupInfo:
    manifest, _ = _read_manifest(path)
    complete, why, in_progress = _completeness(path)
    problems = () if in_progress else tuple(verify_backup(path, checksums=checksums))
    created = _parse_time(manifest.get("created_at")) or datetime.fromtimestamp(_mtime(path), UTC)
    size = sum(_size(p) for p in _walk_files(path))
    label = str(manifest.get("label") or path.parent.name)
    return BackupInfo(
        path, label, created, size, not problems and not in_progress, problems, complete, why, in_progress
    )


def _completeness(path: Path) -> tuple[bool, str, bool]:
    """(complete, why not, being written now) of a backup directory."""
    if path.name.endswith(PARTIAL_SUFFIX):
        if _partial_in_progress(path):
            return False, "being written now", True
        return False, "a backup that never finished (killed midway?); --clean-incomplete removes it", False
    if (path / MANIFEST_NAME).is_file():
        return True, "", False
    if path.name.startswith(PRE_RESTORE_PREFIX):
        return (
            False,
            (
                f"{MANIFEST_NAME} is missing: a restore stopped while moving the data it replaced here; "
                "check these files by hand (--clean-incomplete keeps them)"
            ),
            False,
        )
    return False, f"{MANIFEST_NAME} is missing: the backup never finished (killed midway?)", False


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # renamed or removed meanwhile
        return 0.0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------- restore
async def restore_backup(path: str | os.PathLike[str], settings: Settings, *, keep_current: bool = True) -> Path | None:
    """Put the backup's database and vectors in place of the current ones. **Stop the bot first.**

    Installs only the files the manifest lists, from inside the backup directory, and only once every
    listed file's sha256 matched (the files are copied beside their targets and hashed while copied, so
    what is installed is what was checked). Refuses, before touching anything, a backup that fails
    :func:`verify_backup` (a file the manifest does not list, a path or link leading outside the backup,
    a damaged file), one from a newer schema, and a database that another process has open. The current
    database (with its -wal/-shm) and vectors are moved to ``<backups_dir>/pre_restore_<timestamp>/``,
    which is returned (and is itself restorable); with ``keep_current=False`` they are deleted once the
    restore succeeded and None is returned. The settings file is not restored: the backup keeps a copy
    to compare by hand.
    """
    path = Path(path)
    problems = await asyncio.to_thread(verify_backup, path, checksums=False)  # hashes: while copying, below
    if problems:
        raise BackupDamaged(_damaged_message(path, problems))
    manifest = read_manifest(path)
    schema = int(manifest.get("schema_version") or 0)
    if schema > SCHEMA_VERSION:
        raise BackupError(
            f"backup {path} has schema version {schema}, newer than this code ({SCHEMA_VERSION}); "
            "upgrade qwen3-memory or pick an older backup. Nothing was changed"
        )
    aside, ledger = await asyncio.to_thread(_restore_sync, path, manifest, settings, keep_current)
    await _forget_again(settings, ledger)
    return aside


async def _forget_again(settings: Settings, ledger: DeletionLedger) -> None:
    """Apply the replaced memory's deletion ledger to the restored one: a backup older than a forget-me or a
    deleted Discord message must not bring them back (the backups themselves are left as they are)."""
    if not ledger.messages and not ledger.opted_out:
        return
    ms = settings.memory
    params = IndexParams.from_settings(ms.index)
    store = await SQLiteStore.open(settings.database_path, settings.vectors_dir, params)
    try:
        deleted = await store.apply_deletion_ledger(ledger)
    finally:
        await store.close()
    log.info("restore: %d forgotten message(s) deleted again from the restored memory", deleted)


def _restore_sync(
    backup: Path, manifest: dict[str, Any], settings: Settings, keep_current: bool
) -> tuple[Path | None, DeletionLedger]:
    """Install the backup; returns where the replaced data went and what the replaced memory had forgotten."""
    db = settings.database_path
    db_tmp = db.with_name(f".{db.name}.restore-tmp")
    vectors_tmp = settings.vectors_dir.with_name(f".{settings.vectors_dir.name}.restore-tmp")
    try:
        _stage(backup, manifest, db_tmp, vectors_tmp)  # every listed file checked before anything is replaced
        _claim_database(db)
        ledger = read_deletion_ledger(db)  # after the claim folded its log in: read without leaving files behind
        aside, moves = _move_aside(settings)
        try:
            os.replace(db_tmp, db)
            _fsync_dir(db.parent)
            if settings.vectors_dir.exists():  # recreated since the move aside: do not delete what we did not move
                raise BackupError(
                    f"{settings.vectors_dir} was recreated during the restore (is the bot running?); stop it and retry"
                )
            os.replace(vectors_tmp, settings.vectors_dir)
            _fsync_dir(settings.vectors_dir.parent)
        except BaseException:
            _put_back(moves)
            raise
    finally:
        db_tmp.unlink(missing_ok=True)
        shutil.rmtree(vectors_tmp, ignore_errors=True)
    log.info("restored %s; the replaced data is in %s", backup, aside)
    if aside is not None and not keep_current:
        shutil.rmtree(aside, ignore_errors=True)
        return None, ledger
    return aside, ledger


def _stage(backup: Path, manifest: dict[str, Any], db_tmp: Path, vectors_tmp: Path) -> None:
    """Copy the database and the listed vector files to temp names beside their targets, hashing each
    as it is copied; :class:`BackupDamaged` (and nothing kept) when any listed file differs from the manifest."""
    vectors = PurePosixPath(str(manifest.get("vectors") or VECTORS_DIR))
    db_tmp.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(vectors_tmp, ignore_errors=True)
    vectors_tmp.mkdir(parents=True)
    problems = []
    for entry in manifest["files"]:
        rel = PurePosixPath(entry["path"])
        if entry["path"] == manifest["database"]:
            target: Path | None = db_tmp
        elif rel.is_relative_to(vectors) and rel != vectors:
            target = vectors_tmp / rel.relative_to(vectors)
        else:
            target = None  # listed, not restored (the settings copy): checked all the same
        problems.extend(_copy_checked(backup, entry, target))
    if problems:
        raise BackupDamaged(_damaged_message(backup, problems))


def _copy_checked(root: Path, entry: dict[str, Any], target: Path | None) -> list[str]:
    """Copy the listed file to ``target`` (or only read it), hashing it; its problems (empty: it matches)."""
    rel = entry["path"]
    problems = _check_entry(root, entry, checksums=False)
    if problems:
        return problems
    digest = hashlib.sha256()
    try:
        fd = os.open(root / rel, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        return [f"{rel} cannot be read ({exc.strerror})"]
    with os.fdopen(fd, "rb") as src:
        if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
            return [f"{rel} is not a plain file"]
        if target is None:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as dst:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
    if digest.hexdigest() != entry["sha256"]:
        return [f"{rel} is damaged (its sha256 differs from the manifest)"]
    return []


def _locked(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _claim_database(db: Path) -> None:
    """Refuse if another process writes to the database or has it open at all.

    ``BEGIN IMMEDIATE`` fails while another connection writes; leaving WAL mode fails while any other
    connection is open (an idle bot included). Leaving WAL also folds the -wal file into the database.
    """
    if not db.exists():
        return
    conn = sqlite3.connect(db, timeout=LOCK_PROBE_TIMEOUT_S, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
            conn.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.OperationalError as exc:
        if _locked(exc):
            raise BackupError(
                f"{db} is in use by another process (is the bot or a migration command running?); stop it "
                "before restoring: restore replaces the database under it. Nothing was changed"
            ) from None
        raise
    except sqlite3.DatabaseError as exc:  # a damaged database is what a restore is for
        log.warning("the current database %s is damaged (%s); it is moved aside", db, exc)
    finally:
        conn.close()


def _move_aside(settings: Settings) -> tuple[Path | None, list[tuple[Path, Path]]]:
    """Move the current database files and vectors into a new pre-restore backup; returns it and the moves."""
    db = settings.database_path
    current = [(db, db.name)] + [(db.with_name(db.name + s), db.name + s) for s in _SIDE_FILES]
    current.append((settings.vectors_dir, VECTORS_DIR))
    present = [(src, name) for src, name in current if src.exists()]
    if not present:
        return None, []
    created = datetime.now(UTC)
    aside = _new_dir(settings.backups_dir, f"{PRE_RESTORE_PREFIX}{created:%Y%m%d_%H%M%S}")
    moves: list[tuple[Path, Path]] = []
    try:
        for src, name in present:
            shutil.move(src, aside / name)
            moves.append((src, aside / name))
        _fsync_dir(db.parent)
    except BaseException:
        _put_back(moves)
        raise
    _write_pre_restore_manifest(aside, db.name, created, settings)
    return aside, moves


def _write_pre_restore_manifest(aside: Path, db_name: str, created: datetime, settings: Settings) -> None:
    """Make the moved-aside data a backup like any other, so a restore can be undone by restoring it."""
    try:
        manifest = {
            "format": MANIFEST_FORMAT,
            "label": "pre_restore",
            "created_at": created.isoformat(timespec="seconds"),
            "schema_version": _schema_version(aside / db_name) if (aside / db_name).exists() else 0,
            "database": db_name,
            "vectors": VECTORS_DIR,
            "settings": None,
            "sources": {"database": str(settings.database_path), "vectors_dir": str(settings.vectors_dir)},
            "files": _describe_files(aside),
        }
        _write_json_atomic(aside / MANIFEST_NAME, manifest)
    except OSError as exc:  # the data is safe in place; only the manifest is missing
        log.warning("could not write a manifest for %s (%s); its files are intact", aside, exc)


def _put_back(moves: list[tuple[Path, Path]]) -> None:
    """Undo :func:`_move_aside`: remove whatever was installed and move the originals back."""
    for original, moved in reversed(moves):
        try:
            if original.is_dir():
                shutil.rmtree(original)
            elif original.exists():
                original.unlink()
            shutil.move(moved, original)
        except OSError:
            log.exception("could not move %s back to %s; copy it back by hand", moved, original)
