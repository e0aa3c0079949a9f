"""Bounds on what a user's input may cost: the length of a message that quotes it, and memory.

- `quote(text)`: the repr of user text, cut to a readable length, for error messages
  (a megabyte-long pattern or CSV field must not become a megabyte-long error line).
- `require_memory(nbytes, what)`: ValueError when an allocation that a file declares
  (an HDF5 dataset, an .npz member) could not fit in the memory this process may use,
  raised before anything is allocated.
"""

from __future__ import annotations

import os
import resource

QUOTE_LIMIT = 40  # characters of user text quoted in a message


def quote(text: object, limit: int = QUOTE_LIMIT) -> str:
    """A string's repr (bytes shown as text when they are UTF-8), or an object's repr, cut to `limit` characters."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:  # binary: show the bytes as Python writes them
            text = bytes(text)
    if isinstance(text, (str, bytes)):
        return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text):,} characters)"
    try:
        shown = repr(text)
    except ValueError:  # an int too long for repr (over 4300 digits)
        return f"<a {type(text).__name__} too long to print>"
    return shown if len(shown) <= limit else f"{shown[:limit]}... ({len(shown):,} characters)"


def available_memory() -> int:
    """Bytes this process can still allocate: the machine's available memory, capped by RLIMIT_AS."""
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        with open("/proc/meminfo") as meminfo:  # MemAvailable counts reclaimable caches, unlike free pages
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return available if soft == resource.RLIM_INFINITY else min(available, soft)


def require_memory(nbytes: int, what: str) -> None:
    """ValueError naming `what` when `nbytes` exceed the memory available to this process."""
    available = available_memory()
    if nbytes > available:
        raise ValueError(f"{what} needs {nbytes / 2**30:,.1f} GiB, more than the "
                         f"{available / 2**30:,.1f} GiB of memory available")
