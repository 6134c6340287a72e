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

A directory without ``manifest.json`` is an interrupted backup and is never restored.

Restore is meant to run with the bot **stopped**: it replaces the database file under any open
connection. It refuses when the database is in use, and refuses a damaged backup before it
touches anything. The data it replaces is moved aside (itself a restorable backup), not deleted.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import logging
import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from qwen3_memory.backends.sqlite.schema import SCHEMA_VERSION
from qwen3_memory.errors import UserFacingError, disk_full
from qwen3_memory.settings import Settings

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
VECTORS_DIR = "vectors"
SETTINGS_DIR = "settings"
PRE_RESTORE_PREFIX = "pre_restore_"
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

    @property
    def status(self) -> str:
        return "ok" if self.ok else "damaged"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "label": self.label,
            "created": self.created.isoformat(timespec="seconds"),
            "size": self.size,
            "status": self.status,
            "problems": list(self.problems),
        }


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
    dest = _new_dir(settings.backups_dir / label, f"{label}_backup_{created:%Y%m%d_%H%M%S}")
    try:
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
        _write_json_atomic(dest / MANIFEST_NAME, manifest)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)  # without a manifest it would be refused anyway
        raise
    log.info("backup written to %s", dest)
    return dest


def _new_dir(parent: Path, name: str) -> Path:
    """Create ``parent/name`` (or ``name_2``, ``name_3``...): never reuse an existing directory."""
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = parent / (name if n == 1 else f"{name}_{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise BackupError(f"{parent}: too many directories named {name}*; remove old ones")


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
        if rel in (MANIFEST_NAME, MANIFEST_NAME + ".tmp"):
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
            return {}, f"{MANIFEST_NAME} has a malformed file entry: {entry!r}"
    return manifest, ""


def _valid_entry(entry: Any) -> bool:
    if not isinstance(entry, dict):
        return False
    rel = entry.get("path")
    if not isinstance(rel, str) or not rel or PurePosixPath(rel).is_absolute() or ".." in PurePosixPath(rel).parts:
        return False
    return isinstance(entry.get("size"), int) and isinstance(entry.get("sha256"), str)


def verify_backup(path: str | os.PathLike[str], *, checksums: bool = True) -> list[str]:
    """Problems that make the backup unsafe to restore (empty: it is intact). Extra files are fine.

    ``checksums=False`` checks presence and sizes only (fast, for listings); restore always hashes.
    """
    path = Path(path)
    manifest, problem = _read_manifest(path)
    if problem:
        return [problem]
    problems = []
    listed = {entry["path"] for entry in manifest["files"]}
    if manifest.get("database") not in listed:
        problems.append(f"{MANIFEST_NAME} lists no database file")
    for entry in manifest["files"]:
        problems.extend(_check_entry(path, entry, checksums))
    return problems


def _check_entry(root: Path, entry: dict[str, Any], checksums: bool) -> list[str]:
    file = root / entry["path"]
    if not file.is_file():
        return [f"{entry['path']} is missing"]
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
    """Every backup under ``backups_dir`` (labelled ones and pre-restore copies), newest first."""
    root = settings.backups_dir
    if not root.is_dir():
        return []
    infos = [_backup_info(path, checksums) for path in _backup_dirs(root)]
    return sorted(infos, key=lambda info: info.created, reverse=True)


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
    problems = tuple(verify_backup(path, checksums=checksums))
    created = _parse_time(manifest.get("created_at")) or datetime.fromtimestamp(path.stat().st_mtime, UTC)
    size = sum(p.stat().st_size for p in _walk_files(path))
    label = str(manifest.get("label") or path.parent.name)
    return BackupInfo(path, label, created, size, not problems, problems)


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------- restore
async def restore_backup(path: str | os.PathLike[str], settings: Settings, *, keep_current: bool = True) -> Path | None:
    """Put the backup's database and vectors in place of the current ones. **Stop the bot first.**

    Refuses (before touching anything) a backup that fails :func:`verify_backup`, one from a newer
    schema, and a database that another process has open. The current database (with its -wal/-shm)
    and vectors are moved to ``<backups_dir>/pre_restore_<timestamp>/``, which is returned (and is
    itself restorable); with ``keep_current=False`` they are deleted once the restore succeeded and
    None is returned. The settings file is not restored: the backup keeps a copy to compare by hand.
    """
    path = Path(path)
    problems = await asyncio.to_thread(verify_backup, path)
    if problems:
        raise BackupDamaged(_damaged_message(path, problems))
    manifest = read_manifest(path)
    schema = int(manifest.get("schema_version") or 0)
    if schema > SCHEMA_VERSION:
        raise BackupError(
            f"backup {path} has schema version {schema}, newer than this code ({SCHEMA_VERSION}); "
            "upgrade qwen3-memory or pick an older backup. Nothing was changed"
        )
    return await asyncio.to_thread(_restore_sync, path, manifest, settings, keep_current)


def _restore_sync(backup: Path, manifest: dict[str, Any], settings: Settings, keep_current: bool) -> Path | None:
    db = settings.database_path
    _claim_database(db)
    aside, moves = _move_aside(settings)
    try:
        _install_file(backup / manifest["database"], db)
        _install_tree(backup / str(manifest.get("vectors") or VECTORS_DIR), settings.vectors_dir)
    except BaseException:
        _put_back(moves)
        raise
    log.info("restored %s; the replaced data is in %s", backup, aside)
    if aside is not None and not keep_current:
        shutil.rmtree(aside, ignore_errors=True)
        return None
    return aside


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


def _install_file(source: Path, target: Path) -> None:
    """Copy to a temp name beside ``target``, fsync, rename over it: ``target`` is never half-written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.restore-tmp")
    shutil.copyfile(source, tmp)
    _fsync_file(tmp)
    os.replace(tmp, target)
    _fsync_dir(target.parent)


def _install_tree(source: Path, target: Path) -> None:
    """Copy ``source`` to a temp directory beside ``target`` and rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.restore-tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    if source.is_dir():
        for path in sorted(_walk_files(source)):
            _copy_file(path, tmp / path.relative_to(source))
    if target.exists():  # something recreated it since the move aside: do not delete what we did not move
        shutil.rmtree(tmp, ignore_errors=True)
        raise BackupError(f"{target} was recreated during the restore (is the bot running?); stop it and retry")
    os.replace(tmp, target)
    _fsync_dir(target.parent)
