"""Graph loaders and writers.

`load(path)` picks the format from the path:
- a GraphMiner binary prefix: a directory holding `graph.meta.txt`, or a prefix
  `.../name` with `.../name.meta.txt` beside it;
- `.mtx`: Matrix Market coordinate format (1-based ids);
- `.npz`: arrays `indptr` + `indices` (CSR) or `src` + `dst` (edges), optional `vlabels`;
- anything else: a SNAP edge list (`#` or `%` comments, two ids per line, tab or space).

Every graph goes through `from_edges`, so it comes back symmetric, without self
loops or duplicates, and sorted.  Malformed input raises one ValueError naming
the file and, for text formats, the line.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from workloads.graphs.csr import CSRGraph, from_edges

GRAPHMINER_SIZES = ("4", "8", "1", "2")  # bytes of a vertex id, an edge offset, a vertex label, an edge label


def load(path: str | os.PathLike, name: str | None = None) -> CSRGraph:
    """Load a graph file (format chosen from the path, see the module doc)."""
    path = Path(path)
    prefix = _graphminer_prefix(path)
    if prefix is not None:
        return load_graphminer(prefix, name)
    if not path.is_file():
        raise ValueError(f"{path}: no such graph file (nor a GraphMiner prefix with {path}.meta.txt)")
    suffix = path.suffix.lower()
    if suffix == ".mtx":
        return load_matrix_market(path, name)
    if suffix == ".npz":
        return load_npz(path, name)
    return load_edge_list(path, name)


def _graphminer_prefix(path: Path) -> Path | None:
    if path.is_dir() and (path / "graph.meta.txt").is_file():
        return path / "graph"
    if Path(f"{path}.meta.txt").is_file():
        return path
    return None


def load_graphminer(prefix: str | os.PathLike, name: str | None = None) -> CSRGraph:
    """Load the GraphMiner binary CSR format from its prefix (`.../graph`).

    Edge labels (`.elabel.bin`), if present, are not read: no problem here uses them.
    """
    prefix = Path(prefix)
    meta_path = Path(f"{prefix}.meta.txt")
    name = name or prefix.parent.name or prefix.name
    lines = [line.strip() for line in _read_text(meta_path).splitlines()]
    if len(lines) < 4:
        raise ValueError(f"{meta_path}: expected at least 4 lines (|V|, CSR entries, sizes, max degree), "
                         f"found {len(lines)}")
    num_vertices = _meta_int(meta_path, lines, 0, "|V|")
    num_entries = _meta_int(meta_path, lines, 1, "CSR entries")
    if tuple(lines[2].split()) != GRAPHMINER_SIZES:
        raise ValueError(f"{meta_path}, line 3: type sizes must be {' '.join(GRAPHMINER_SIZES)}, not {lines[2]!r}")
    if num_vertices <= 0 or num_entries <= 0:
        raise ValueError(f"{meta_path}: empty graph (|V| = {num_vertices}, {num_entries} CSR entries)")

    vertex_path, edge_path = Path(f"{prefix}.vertex.bin"), Path(f"{prefix}.edge.bin")
    _check_size(vertex_path, (num_vertices + 1) * 8, meta_path, f"{num_vertices}+1 int64 row pointers")
    _check_size(edge_path, num_entries * 4, meta_path, f"{num_entries} int32 column ids")
    indptr = np.fromfile(vertex_path, dtype="<i8")
    indices = np.fromfile(edge_path, dtype="<i4")
    if indptr[0] != 0 or indptr[-1] != num_entries or np.any(np.diff(indptr) < 0):
        raise ValueError(f"{vertex_path}: row pointers must rise from 0 to {num_entries} (the meta's CSR entries)")
    if indices.min() < 0 or indices.max() >= num_vertices:
        bad = int(indices.min()) if indices.min() < 0 else int(indices.max())
        raise ValueError(f"{edge_path}: vertex id {bad} is outside 0..{num_vertices - 1} (|V| from {meta_path})")

    vlabels = None
    vlabel_path = Path(f"{prefix}.vlabel.bin")
    if vlabel_path.is_file():
        _check_size(vlabel_path, num_vertices, meta_path, f"{num_vertices} uint8 vertex labels")
        vlabels = np.fromfile(vlabel_path, dtype=np.uint8)
    src = np.repeat(np.arange(num_vertices, dtype=np.int64), np.diff(indptr))
    return from_edges(src, indices, num_vertices, vlabels, name)


def _meta_int(meta_path: Path, lines: list[str], index: int, what: str) -> int:
    try:
        return int(lines[index])
    except ValueError:
        raise ValueError(f"{meta_path}, line {index + 1}: {what} must be an integer, not {lines[index]!r}") from None


def _check_size(path: Path, expected: int, meta_path: Path, what: str) -> None:
    if not path.is_file():
        raise ValueError(f"{path}: missing (the GraphMiner format needs it beside {meta_path})")
    actual = path.stat().st_size
    if actual != expected:
        raise ValueError(f"{path}: {actual} bytes, but {meta_path} implies {what} = {expected} bytes")


def save_graphminer(graph: CSRGraph, prefix: str | os.PathLike) -> None:
    """Write `graph` in the GraphMiner binary CSR format under `prefix`."""
    prefix = Path(prefix)
    vertex_classes = 0 if graph.vlabels is None else int(graph.vlabels.max()) + 1
    meta = [graph.num_vertices, graph.num_arcs, " ".join(GRAPHMINER_SIZES), graph.max_degree, 0, vertex_classes, 0]
    Path(f"{prefix}.meta.txt").write_text("".join(f"{value}\n" for value in meta))
    graph.indptr.astype("<i8").tofile(f"{prefix}.vertex.bin")
    graph.indices.astype("<i4").tofile(f"{prefix}.edge.bin")
    if graph.vlabels is not None:
        graph.vlabels.tofile(f"{prefix}.vlabel.bin")


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not a text file (byte {error.start} is not UTF-8)") from None


def load_edge_list(path: str | os.PathLike, name: str | None = None,
                   num_vertices: int | None = None) -> CSRGraph:
    """Load a SNAP-style edge list: one `src dst` pair per line, `#`/`%` comments."""
    path = Path(path)
    ids = _fast_edge_list(path)
    if ids is None:  # malformed somewhere: the line-by-line parser finds and names the line
        ids = _parse_int_rows(path, _read_text(path).splitlines(), 0, columns=2, what="edge")
    return _from_file_edges(path, ids[:, 0], ids[:, 1], num_vertices, name)


def _fast_edge_list(path: Path) -> np.ndarray | None:
    """The (m, 2) ids of a well-formed edge list via pandas' C parser; None when anything is off."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, sep=r"\s+", comment="#", header=None, dtype=np.int64, engine="c")
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, OverflowError):
        return None
    ids = frame.to_numpy()
    if ids.ndim != 2 or ids.shape[1] != 2 or len(ids) == 0 or ids.min() < 0:
        return None
    return ids


def load_matrix_market(path: str | os.PathLike, name: str | None = None) -> CSRGraph:
    """Load a Matrix Market coordinate file as an undirected graph (values are ignored)."""
    path = Path(path)
    lines = path.read_text().splitlines()
    if not lines or not lines[0].lower().startswith("%%matrixmarket"):
        raise ValueError(f"{path}, line 1: not a Matrix Market file (no %%MatrixMarket header)")
    header = lines[0].lower().split()
    if len(header) < 4 or header[1] != "matrix" or header[2] != "coordinate":
        raise ValueError(f"{path}, line 1: only 'matrix coordinate' Matrix Market files are graphs, not {lines[0]!r}")
    columns = 2 if header[3] == "pattern" else 3 if header[3] in ("integer", "real") else 4
    size_line = next((i for i in range(1, len(lines)) if lines[i].strip() and not lines[i].startswith("%")), None)
    if size_line is None:
        raise ValueError(f"{path}: no size line (rows cols entries)")
    size = _parse_int_rows(path, lines[size_line:size_line + 1], size_line, columns=3, what="size")[0]
    rows, cols, entries = (int(x) for x in size)
    if rows != cols:
        raise ValueError(f"{path}, line {size_line + 1}: a graph's matrix must be square, not {rows} x {cols}")
    ids = _parse_int_rows(path, lines[size_line + 1:], size_line + 1, columns=columns, what="entry",
                          integer_columns=2)
    if len(ids) != entries:
        raise ValueError(f"{path}, line {size_line + 1}: size line announces {entries} entries, file has {len(ids)}")
    if len(ids) == 0:
        raise ValueError(f"{path}: empty graph (no entries)")
    src, dst = ids[:, 0] - 1, ids[:, 1] - 1
    for values in (src, dst):
        bad = np.flatnonzero((values < 0) | (values >= rows))
        if len(bad):
            line = _data_line_number(lines, size_line + 1, int(bad[0]))
            raise ValueError(f"{path}, line {line}: vertex id {int(values[bad[0]]) + 1} is outside 1..{rows}")
    return _from_file_edges(path, src, dst, rows, name)


def _from_file_edges(path: Path, src: np.ndarray, dst: np.ndarray, num_vertices: int | None,
                     name: str | None) -> CSRGraph:
    """`from_edges`, with any refusal (empty graph, id beyond |V|) naming the file."""
    try:
        return from_edges(src, dst, num_vertices, name=name or path.stem)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def load_npz(path: str | os.PathLike, name: str | None = None) -> CSRGraph:
    """Load `indptr`/`indices` (CSR) or `src`/`dst` (edges) arrays, with optional `vlabels`."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError) as error:  # not a zip of arrays, or object arrays that need pickle
        raise ValueError(f"{path}: not a readable .npz of numeric arrays ({error})") from None
    labels = arrays.get("vlabels")
    name = name or path.stem
    try:
        if "indptr" in arrays and "indices" in arrays:
            indptr = arrays["indptr"].astype(np.int64)
            if indptr.ndim != 1 or len(indptr) < 2 or indptr[0] != 0 or np.any(np.diff(indptr) < 0) \
                    or indptr[-1] != len(arrays["indices"]):
                raise ValueError("indptr must rise from 0 to len(indices)")
            src = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
            return from_edges(src, arrays["indices"], len(indptr) - 1, labels, name)
        if "src" in arrays and "dst" in arrays:
            num_vertices = int(arrays["num_vertices"]) if "num_vertices" in arrays else None
            return from_edges(arrays["src"], arrays["dst"], num_vertices, labels, name)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    raise ValueError(f"{path}: expected arrays 'indptr' and 'indices', or 'src' and 'dst'; found {sorted(arrays)}")


def save_npz(graph: CSRGraph, path: str | os.PathLike) -> None:
    """Write `graph` as `.npz` (CSR arrays, labels when present)."""
    arrays = {"indptr": graph.indptr, "indices": graph.indices}
    if graph.vlabels is not None:
        arrays["vlabels"] = graph.vlabels
    np.savez(path, **arrays)


def _parse_int_rows(path: Path, lines: list[str], first_line: int, columns: int, what: str,
                    integer_columns: int | None = None) -> np.ndarray:
    """Non-comment lines as an int64 array of `integer_columns` columns (all, by default).

    `first_line` is the 0-based line number of `lines[0]` in the file, for messages.
    Lines may carry extra non-integer columns beyond `integer_columns` (Matrix
    Market values); ids must be non-negative integers.
    """
    width = integer_columns or columns
    rows: list[list[int]] = []
    for offset, line in enumerate(lines):
        text = line.strip()
        if not text or text[0] in "#%":
            continue
        tokens = text.split()
        line_number = first_line + offset + 1
        if len(tokens) != columns:
            raise ValueError(f"{path}, line {line_number}: expected {columns} columns per {what}, "
                             f"found {len(tokens)}: {text!r}")
        row = []
        for token in tokens[:width]:
            try:
                value = int(token)
            except ValueError:
                raise ValueError(f"{path}, line {line_number}: {token!r} is not an integer vertex id") from None
            if value < 0:
                raise ValueError(f"{path}, line {line_number}: negative vertex id {value}")
            row.append(value)
        rows.append(row)
    return np.array(rows, dtype=np.int64).reshape(len(rows), width)


def _data_line_number(lines: list[str], first_line: int, data_index: int) -> int:
    """1-based file line of the `data_index`-th non-comment line at or after `first_line`."""
    seen = -1
    for number in range(first_line, len(lines)):
        text = lines[number].strip()
        if text and text[0] not in "#%":
            seen += 1
            if seen == data_index:
                return number + 1
    return len(lines)
