"""A strict reader for the integer columns of graph text files (edge lists, Matrix Market entries).

A file is rows of tokens separated by blanks (space, tab, CR, VT, FF); lines whose
first non-blank byte is `#` or `%` are comments; blank lines are skipped.  The
first `id_columns` tokens of a row are ids: ASCII digits only, at most 2^63 - 1, so
`2.0`, `1_0`, `+1`, `-1` and non-ASCII digits are refused, and nothing overflows
later.  Every row has exactly `columns` tokens (Matrix Market values are not read).

The scan runs twice over the file's bytes (numba): once to validate and count the
rows, once to fill an array of exactly that size, so memory is the file's bytes
plus the ids, whatever the file holds.  Every refusal names the file and the line.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import numba
import numpy as np

from workloads.limits import quote

INT64_MAX = 2**63 - 1
_OK, _NOT_DIGITS, _TOO_LARGE, _COLUMNS = 0, 1, 2, 3
_SHOWN_BYTES = 200  # of a bad token or line, read back for its message


@numba.njit(cache=True, inline="always")
def _blank(c):
    return c == 32 or c == 9 or c == 13 or c == 11 or c == 12


@numba.njit(cache=True)
def _scan(data, start, line, columns, id_columns, max_rows, out):
    """Read rows from byte `start` (on 1-based `line`) until the end or `max_rows` rows.

    Fills `out` (rows x id_columns) when it has rows; pass an empty one to count.
    Returns (rows, code, line, offset, tokens): on success the line of the last row
    and the offset of the byte after it; on an error, its line, the offset of the
    bad token (of the line, for a column count) and the tokens found on that line.
    """
    fill = out.shape[0] > 0
    n = data.shape[0]
    rows = 0
    i = start
    while i < n:
        while i < n and _blank(data[i]):
            i += 1
        line_start = i
        tokens = 0
        if i < n and (data[i] == 35 or data[i] == 37):  # '#' or '%': a comment line
            while i < n and data[i] != 10:
                i += 1
        while i < n and data[i] != 10:
            if _blank(data[i]):
                i += 1
                continue
            token = i
            value = 0
            while i < n and data[i] != 10 and not _blank(data[i]):
                if tokens < id_columns:
                    digit = np.int64(data[i]) - 48
                    if digit < 0 or digit > 9:
                        return rows, _NOT_DIGITS, line, token, tokens
                    if value > (INT64_MAX - digit) // 10:
                        return rows, _TOO_LARGE, line, token, tokens
                    value = value * 10 + digit
                i += 1
            if fill and tokens < id_columns and rows < out.shape[0]:
                out[rows, tokens] = value
            tokens += 1
        if tokens:
            if tokens != columns:
                return rows, _COLUMNS, line, line_start, tokens
            rows += 1
            if rows == max_rows:
                return rows, _OK, line, i, tokens
        i += 1
        line += 1
    return rows, _OK, line, i, 0


def read_rows(path: Path, data: np.ndarray, columns: int, what: str, id_columns: int | None = None,
              start: int = 0, first_line: int = 1, max_rows: int = -1) -> tuple[np.ndarray, int, int]:
    """The id columns of every row from byte `start`, as int64 (rows, id_columns).

    Returns the ids, the line of the last row read and the offset just after it
    (where a further read continues).  `what` names a row in messages ("edge").
    """
    width = columns if id_columns is None else id_columns
    rows, code, line, offset, tokens = _scan(data, start, first_line, columns, width, max_rows,
                                             np.empty((0, width), dtype=np.int64))
    if code != _OK:
        raise ValueError(_message(path, data, code, line, offset, tokens, columns, what))
    ids = np.empty((rows, width), dtype=np.int64)
    if rows:
        _scan(data, start, first_line, columns, width, max_rows, ids)
    return ids, line, offset


def _message(path: Path, data: np.ndarray, code: int, line: int, offset: int, tokens: int, columns: int,
             what: str) -> str:
    if code == _COLUMNS:
        text = _bytes_at(data, offset, stop_at_blank=False)
        return f"{path}, line {line}: expected {columns} columns per {what}, found {tokens}: {quote(text)}"
    token = _bytes_at(data, offset, stop_at_blank=True)
    if not _is_text(token):
        return f"{path}: not a text file (line {line} holds {quote(token)})"
    shown = token.decode(errors="backslashreplace") if len(token) <= 30 else quote(token)
    if code == _TOO_LARGE:
        return f"{path}, line {line}: {_noun(what)} {shown} is larger than 2^63 - 1"
    if token[:1] == b"-" and token[1:].isdigit():
        return f"{path}, line {line}: negative {_noun(what)} {shown}"
    return f"{path}, line {line}: {quote(token)} is not an integer {_noun(what)} (digits 0-9 only)"


def _noun(what: str) -> str:
    return "vertex id" if what in ("edge", "entry") else f"{what} value"


def _bytes_at(data: np.ndarray, offset: int, stop_at_blank: bool, limit: int = _SHOWN_BYTES) -> bytes:
    """The token (or the rest of the line) at `offset`, at most `limit` bytes."""
    chunk = bytes(data[offset:offset + limit])
    for position, byte in enumerate(chunk):
        if byte == 10 or (stop_at_blank and byte in b" \t\r\v\f"):
            return chunk[:position].rstrip(b"\r")
    return chunk


def _is_text(raw: bytes) -> bool:
    """No control bytes, and UTF-8 (a sequence cut short allowed only where `_bytes_at` cut the token)."""
    if any(byte < 32 for byte in raw):
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(raw, final=len(raw) < _SHOWN_BYTES)
    except UnicodeDecodeError:
        return False
    return True
