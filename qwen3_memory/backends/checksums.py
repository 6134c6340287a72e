"""The vector part of a channel's checksums, computed the same way by every backend.

A move between backends is verified by comparing digests, so both stores' ``checksums`` hash
their vectors with :func:`vectors_digest` and equal vectors give equal digests on either.
"""

from __future__ import annotations

import hashlib

import numpy as np


def vectors_digest(ids: np.ndarray, vectors: np.ndarray) -> str:
    """sha256 over (id as int64 LE, vector as float32 LE) rows in the given order: the checksums' vector part.

    Shared by both backends' ``checksums``, so the same vectors give the same digest on either.
    """
    rows = np.empty(len(ids), dtype=[("id", "<i8"), ("vector", "<f4", (vectors.shape[1],))])
    rows["id"], rows["vector"] = ids, vectors
    return hashlib.sha256(rows.tobytes()).hexdigest()
