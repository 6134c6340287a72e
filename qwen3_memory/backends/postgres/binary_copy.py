"""The binary ``COPY`` codec for vector rows, built and parsed with numpy in one pass.

Bulk vector writes and reads go through binary ``COPY`` so that a migration backfill or an index
load never decodes vectors one Python object at a time. A row is (bigint columns..., vector), the
vector in pgvector's binary form: ``vector`` as float32, ``halfvec`` as float16, big-endian.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from qwen3_memory.errors import StoreError

_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = b"\xff\xff"


def copy_row_dtype(bigint_columns: int, dimension: int, kind: str) -> np.dtype:
    """One row of a binary COPY stream: field count, then (length, bigint) per column, then the vector."""
    fields: list[tuple[Any, ...]] = [("fields", ">i2")]
    for i in range(bigint_columns):
        fields += [(f"len{i}", ">i4"), (f"col{i}", ">i8")]
    scalar = ">f2" if kind == "halfvec" else ">f4"
    fields += [("vlen", ">i4"), ("dim", ">u2"), ("unused", ">u2"), ("vector", scalar, (dimension,))]
    return np.dtype(fields)


def encode_copy_vectors(columns: Sequence[np.ndarray], vectors: np.ndarray, kind: str) -> bytes:
    """A complete binary COPY payload of rows (bigint columns..., vector) built in one numpy pass."""
    n, dimension = vectors.shape
    rows = np.empty(n, dtype=copy_row_dtype(len(columns), dimension, kind))
    rows["fields"] = len(columns) + 1
    for i, column in enumerate(columns):
        rows[f"len{i}"] = 8
        rows[f"col{i}"] = column
    rows["vlen"] = 4 + rows.dtype["vector"].itemsize
    rows["dim"] = dimension
    rows["unused"] = 0
    rows["vector"] = vectors
    return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER


def decode_copy_vectors(data: bytes, dimension: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(ids int64, vectors float32 (n, d)) of a binary ``COPY (SELECT id, embedding ...) TO STDOUT``."""
    if not data.startswith(_COPY_HEADER[:11]) or not data.endswith(_COPY_TRAILER):
        raise StoreError("the server sent a malformed binary COPY stream")
    extension = struct.unpack_from(">i", data, 15)[0]
    body = memoryview(data)[19 + extension : len(data) - 2]
    rows = np.frombuffer(body, dtype=copy_row_dtype(1, dimension, kind))
    if len(rows) and ((rows["fields"] != 2).any() or (rows["dim"] != dimension).any()):
        raise ValueError(f"some stored vectors are not {dimension}-d")
    return rows["col0"].astype(np.int64), rows["vector"].astype(np.float32)
