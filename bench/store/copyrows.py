"""Request rows as a binary COPY stream (``COPY ... FROM STDIN (FORMAT binary)``).

Binary rather than text COPY because most of a row is its ``itl_ms`` array:
Postgres parses a binary float4 in a few nanoseconds but a decimal one in
~100, and numpy encodes every gap of every request in one vectorised pass
instead of one ``repr`` per float. Measured on the project machine (2 vCPU,
127 gaps per request): text COPY ~5k rows/s end to end, binary ~60k
(``benchmarks/ingest.py``, docs/performance.md; ~90k with the threaded
:class:`ChunkReader`). Floats are big-endian IEEE 754, so ``ttft_ms``
and friends arrive bit-for-bit; ``itl_ms`` is ``real[]`` by contract and is
rounded to float32 here, exactly as Postgres would round a decimal.

A request's generated ids travel as one ``bytea`` of little-endian uint32
(``bench.core.records.pack_token_ids``): numpy packs every row of a chunk in
one pass, as for the gaps, and Postgres copies the bytes without parsing
them; its digest is 32 raw bytes.
"""

from __future__ import annotations

import itertools
import queue
import struct
import threading
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from bench.core.records import RequestResult

#: Column order of the stream; ``COPY request_result (<these>)``.
COLUMNS: tuple[str, ...] = (
    "run_id",
    "request_index",
    "prompt_sha",
    "input_tokens",
    "output_tokens",
    "ttft_ms",
    "tpot_ms",
    "e2e_ms",
    "itl_ms",
    "success",
    "error",
    "output_sha",
    "output_ids",
    "output_text",
)
COPY_SQL = f"COPY request_result ({', '.join(COLUMNS)}) FROM STDIN WITH (FORMAT binary)"

_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_TRAILER = struct.pack(">h", -1)
_NULL = struct.pack(">i", -1)
_FLOAT4_OID = 700
#: One array element on the wire: its byte length (always 4), then the float4.
_ELEMENT = np.dtype([("len", ">i4"), ("val", ">f4")])
_EMPTY_ARRAY = struct.pack(">iiii", 12, 0, 0, _FLOAT4_OID)  # field length, ndim 0, no flags, float4
_ROW_HEAD = struct.Struct(">hiqii")  # field count, run_id (int8), request_index (int4)
_INT4_PAIR = struct.Struct(">iiii")  # input_tokens, output_tokens
_FLOAT8 = struct.Struct(">id")
_ARRAY_HEAD = struct.Struct(">iiiiii")  # field length, ndim, flags, element oid, dim, lower bound
_LEN = struct.Struct(">i")
_BOOL_TRUE = b"\x00\x00\x00\x01\x01"
_BOOL_FALSE = b"\x00\x00\x00\x01\x00"
_OK_NO_ERROR = _BOOL_TRUE + _NULL  # success = true, error = NULL
_SHA_LEN = _LEN.pack(32)
_IDS = np.dtype("<u4")
#: Everything before the gaps of a row with a 64-char prompt_sha and all timings set.
_REGULAR = struct.Struct(">hiqii" + "i64s" + "iiii" + "ididid" + "iiiiii")


def _text(value: str) -> bytes:
    # Postgres text cannot hold NUL; an error message is diagnostics, not data.
    raw = value.replace("\x00", "\ufffd").encode("utf-8")
    return _LEN.pack(len(raw)) + raw


def _float8(value: float | None) -> bytes:
    return _NULL if value is None else _FLOAT8.pack(8, value)


def encode(
    run_id: int, requests: Sequence[RequestResult], chunk_rows: int = 250
) -> Iterator[bytes]:
    """The complete binary COPY stream for ``requests`` of run ``run_id``,
    in chunks of about ``chunk_rows`` rows so the server parses one chunk
    while the next is encoded."""
    yield _HEADER
    for start in range(0, len(requests), chunk_rows):
        yield _encode_rows(run_id, requests[start : start + chunk_rows])
    yield _TRAILER


def _encode_rows(run_id: int, requests: Sequence[RequestResult]) -> bytes:
    counts = [len(r.itl_ms) for r in requests]
    total = sum(counts)
    elements = np.empty(total, dtype=_ELEMENT)
    elements["len"] = 4
    elements["val"] = np.fromiter(
        itertools.chain.from_iterable(r.itl_ms for r in requests), dtype=np.float64, count=total
    )
    gaps = elements.tobytes()
    id_counts = [0 if r.output_token_ids is None else len(r.output_token_ids) for r in requests]
    id_total = sum(id_counts)
    ids = np.fromiter(
        itertools.chain.from_iterable(r.output_token_ids or () for r in requests),
        dtype=_IDS,
        count=id_total,
    ).tobytes()
    id_offset = 0
    out: list[bytes] = []
    add = out.append
    offset = 0
    regular = _REGULAR.pack
    for r, n, n_ids in zip(requests, counts, id_counts, strict=True):
        sha = r.prompt_sha
        if (
            n
            and r.success
            and r.error is None
            and r.ttft_ms is not None
            and r.tpot_ms is not None
            and r.e2e_ms is not None
            and len(sha) == 64
            and sha.isascii()
        ):
            # the common row in one pack call: ~3x faster than field by field
            add(
                regular(
                    len(COLUMNS),
                    8,
                    run_id,
                    4,
                    r.request_index,
                    64,
                    sha.encode(),
                    4,
                    r.input_tokens,
                    4,
                    r.output_tokens,
                    8,
                    r.ttft_ms,
                    8,
                    r.tpot_ms,
                    8,
                    r.e2e_ms,
                    20 + 8 * n,
                    1,
                    0,
                    _FLOAT4_OID,
                    n,
                    1,
                )
            )
            add(gaps[offset : offset + 8 * n])
            offset += 8 * n
            add(_OK_NO_ERROR)
        else:
            add(_ROW_HEAD.pack(len(COLUMNS), 8, run_id, 4, r.request_index))
            add(_text(r.prompt_sha))
            add(_INT4_PAIR.pack(4, r.input_tokens, 4, r.output_tokens))
            add(_float8(r.ttft_ms))
            add(_float8(r.tpot_ms))
            add(_float8(r.e2e_ms))
            if n:
                add(_ARRAY_HEAD.pack(20 + 8 * n, 1, 0, _FLOAT4_OID, n, 1))
                add(gaps[offset : offset + 8 * n])
                offset += 8 * n
            else:
                add(_EMPTY_ARRAY)
            add(_BOOL_TRUE if r.success else _BOOL_FALSE)
            add(_NULL if r.error is None else _text(r.error))
        add(_NULL if r.output_sha is None else _SHA_LEN + bytes.fromhex(r.output_sha))
        if r.output_token_ids is None:
            add(_NULL)
        else:
            add(_LEN.pack(4 * n_ids))
            add(ids[id_offset : id_offset + 4 * n_ids])
            id_offset += 4 * n_ids
        add(_NULL if r.output_text is None else _text(r.output_text))
    return b"".join(out)


class ChunkReader:
    """A read()-able file over an iterator of byte chunks, for
    ``cursor.copy_expert`` (which pulls ``read(size)`` until it gets b"").

    The chunks are produced on a background thread, a couple ahead: while
    psycopg2 sits in ``PQputCopyData`` (GIL released, waiting for the server
    to drain the socket) the next chunk is being encoded, so client encoding
    and server parsing overlap instead of taking turns.
    """

    _DONE = object()

    def __init__(self, chunks: Iterable[bytes], prefetch: int = 2) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=prefetch)
        self._buffer = memoryview(b"")
        self._finished = False
        self._thread = threading.Thread(target=self._produce, args=(iter(chunks),), daemon=True)
        self._thread.start()

    def _produce(self, chunks: Iterator[bytes]) -> None:
        try:
            for chunk in chunks:
                self._queue.put(chunk)
            self._queue.put(self._DONE)
        except BaseException as exc:  # handed to the reader, raised in its thread
            self._queue.put(exc)

    def read(self, size: int = -1) -> bytes:
        while not self._buffer:
            if self._finished:
                return b""
            item = self._queue.get()
            if item is self._DONE:
                self._finished = True
                return b""
            if isinstance(item, BaseException):
                self._finished = True
                raise item
            self._buffer = memoryview(item)  # type: ignore[arg-type]
        if size is None or size < 0:
            size = len(self._buffer)
        piece, self._buffer = self._buffer[:size], self._buffer[size:]
        return piece.tobytes()
