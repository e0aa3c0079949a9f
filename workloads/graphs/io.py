"""Graph loaders and writers.

`load(path)` picks the format from the path:
- a GraphMiner binary prefix: a directory holding `graph.meta.txt`, or a prefix
  `.../name` with `.../name.meta.txt` beside it;
- `.mtx`: Matrix Market coordinate format (1-based ids);
- `.npz`: arrays `indptr` + `indices` (CSR) or `src` + `dst` (edges), optional `vlabels`;
- anything else: a SNAP edge list (`#` or `%` comments, two ids per line, tab or
  space), compressed or not (`.gz`, `.bz2`, `.xz`).

Every graph goes through `from_edges`, so it comes back symmetric, without self
loops or duplicates, and sorted.  Ids in text files are ASCII digits up to
2^63 - 1 (`workloads.graphs.text_rows`).  Sparse ids are compacted, with the
file's ids kept in `graph.original_ids` (as the file writes them: 1-based in
Matrix Market); a size the file declares (Matrix Market's rows, an .npz's
`num_vertices`) is kept unless it is sparse too.  Binary files are checked
against the sizes they declare before anything is allocated.  Malformed input
raises one ValueError naming the file and, for text formats, the line.
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import lzma
import math
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from workloads.graphs.csr import DENSE_ID_LIMIT, CSRGraph, from_edges
from workloads.graphs.text_rows import read_rows
from workloads.limits import quote, require_memory

GRAPHMINER_SIZES = ("4", "8", "1", "2")  # bytes of a vertex id, an edge offset, a vertex label, an edge label
META_LIMIT = 1 << 16  # bytes: a GraphMiner meta file is a few short lines
_DECOMPRESS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


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
    lines = [line.strip() for line in _read_meta(meta_path).splitlines()]
    if len(lines) < 4:
        raise ValueError(f"{meta_path}: expected at least 4 lines (|V|, CSR entries, sizes, max degree), "
                         f"found {len(lines)}")
    num_vertices = _meta_int(meta_path, lines, 0, "|V|")
    num_entries = _meta_int(meta_path, lines, 1, "CSR entries")
    if tuple(lines[2].split()) != GRAPHMINER_SIZES:
        raise ValueError(f"{meta_path}, line 3: type sizes must be {' '.join(GRAPHMINER_SIZES)}, not {quote(lines[2])}")
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


def _read_meta(meta_path: Path) -> str:
    if meta_path.stat().st_size > META_LIMIT:
        raise ValueError(f"{meta_path}: {meta_path.stat().st_size:,} bytes is not a GraphMiner meta file "
                         f"(a few short lines)")
    try:
        return meta_path.read_text()
    except UnicodeDecodeError as error:
        raise ValueError(f"{meta_path}: not a text file (byte {error.start} is not UTF-8)") from None


def _meta_int(meta_path: Path, lines: list[str], index: int, what: str) -> int:
    if not re.fullmatch(r"[0-9]{1,19}", lines[index]):  # 19 digits: any size fits int64
        raise ValueError(f"{meta_path}, line {index + 1}: {what} must be a non-negative integer, "
                         f"not {quote(lines[index])}")
    return int(lines[index])


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


def load_edge_list(path: str | os.PathLike, name: str | None = None,
                   num_vertices: int | None = None) -> CSRGraph:
    """Load a SNAP-style edge list: one `src dst` pair per line, `#`/`%` comments.

    `num_vertices`, when given, is kept as the vertex count (ids must lie below it).
    """
    path = Path(path)
    ids, _, _ = read_rows(path, _file_bytes(path), columns=2, what="edge")
    return _from_file_edges(path, ids[:, 0], ids[:, 1], num_vertices, name)


def _file_bytes(path: Path) -> np.ndarray:
    """The file's bytes (decompressed for .gz, .bz2, .xz), as uint8."""
    opener = _DECOMPRESS.get(path.suffix.lower())
    if opener is None:
        return np.fromfile(path, dtype=np.uint8)
    try:
        with opener(path, "rb") as stream:
            return np.frombuffer(stream.read(), dtype=np.uint8)
    except (OSError, EOFError, lzma.LZMAError) as error:
        raise ValueError(f"{path}: not a readable {path.suffix} file ({error})") from None


def load_matrix_market(path: str | os.PathLike, name: str | None = None) -> CSRGraph:
    """Load a Matrix Market coordinate file as an undirected graph (values are ignored)."""
    path = Path(path)
    data = _file_bytes(path)
    first = bytes(data[:256]).split(b"\n", 1)[0]
    if not first.lower().startswith(b"%%matrixmarket"):
        raise ValueError(f"{path}, line 1: not a Matrix Market file (no %%MatrixMarket header)")
    header = first.decode("ascii", errors="replace").lower().split()
    if len(header) < 4 or header[1] != "matrix" or header[2] != "coordinate":
        raise ValueError(f"{path}, line 1: only 'matrix coordinate' Matrix Market files are graphs, "
                         f"not {quote(first)}")
    columns = 2 if header[3] == "pattern" else 3 if header[3] in ("integer", "real") else 4
    size, size_line, end = read_rows(path, data, columns=3, what="size", max_rows=1)
    if len(size) == 0:
        raise ValueError(f"{path}: no size line (rows cols entries)")
    rows, cols, entries = (int(x) for x in size[0])
    if rows != cols:
        raise ValueError(f"{path}, line {size_line}: a graph's matrix must be square, not {rows} x {cols}")
    ids, _, _ = read_rows(path, data, columns=columns, what="entry", id_columns=2, start=end + 1,
                          first_line=size_line + 1)
    if len(ids) != entries:
        raise ValueError(f"{path}, line {size_line}: size line announces {entries} entries, file has {len(ids)}")
    if len(ids) == 0:
        raise ValueError(f"{path}: empty graph (no entries)")
    src, dst = ids[:, 0] - 1, ids[:, 1] - 1
    for values in (src, dst):
        bad = np.flatnonzero((values < 0) | (values >= rows))
        if len(bad):
            _, line, _ = read_rows(path, data, columns=columns, what="entry", id_columns=2, start=end + 1,
                                   first_line=size_line + 1, max_rows=int(bad[0]) + 1)
            raise ValueError(f"{path}, line {line}: vertex id {int(values[bad[0]]) + 1} is outside 1..{rows}")
    graph = _from_file_edges(path, src, dst, _declared_vertices(rows, len(src)), name)
    if graph.original_ids is None:
        return graph
    return dataclasses.replace(graph, original_ids=graph.original_ids + 1)  # the file's own, 1-based ids


def _declared_vertices(declared: int, num_edges: int) -> int | None:
    """A vertex count a file declares, or None (ids decide) when it is sparse: from_edges' rule, for sizes."""
    return declared if declared <= max(DENSE_ID_LIMIT, 2 * num_edges) else None


def _from_file_edges(path: Path, src: np.ndarray, dst: np.ndarray, num_vertices: int | None,
                     name: str | None) -> CSRGraph:
    """`from_edges`, with any refusal (empty graph, id beyond |V|) naming the file."""
    try:
        return from_edges(src, dst, num_vertices, name=name or path.stem)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def load_npz(path: str | os.PathLike, name: str | None = None) -> CSRGraph:
    """Load `indptr`/`indices` (CSR) or `src`/`dst` (edges) arrays, with optional `vlabels` and `num_vertices`."""
    path = Path(path)
    arrays = _npz_arrays(path)
    labels = arrays.get("vlabels")
    name = name or path.stem
    try:
        if "indptr" in arrays and "indices" in arrays:
            indptr, indices = arrays["indptr"], arrays["indices"]
            if not np.issubdtype(indptr.dtype, np.integer) or indptr.ndim != 1 or len(indptr) < 2:
                raise ValueError(f"indptr must be a 1-D integer array of |V|+1 row pointers, "
                                 f"not {indptr.dtype} of shape {indptr.shape}")
            indptr = indptr.astype(np.int64)
            if indptr[0] != 0 or np.any(np.diff(indptr) < 0) or indptr[-1] != len(indices):
                raise ValueError("indptr must rise from 0 to len(indices)")
            src = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
            return from_edges(src, indices, len(indptr) - 1, labels, name)
        if "src" in arrays and "dst" in arrays:
            num_vertices = None
            if "num_vertices" in arrays:
                declared = arrays["num_vertices"]
                if declared.shape != () or not np.issubdtype(declared.dtype, np.integer):
                    raise ValueError(f"num_vertices must be one integer, not {declared.dtype} of shape "
                                     f"{declared.shape}")
                num_vertices = _declared_vertices(int(declared), np.size(arrays["src"]))
            return from_edges(arrays["src"], arrays["dst"], num_vertices, labels, name)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    raise ValueError(f"{path}: expected arrays 'indptr' and 'indices', or 'src' and 'dst'; found {sorted(arrays)}")


def _npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz, each checked against the bytes it declares before it is allocated."""
    try:
        with zipfile.ZipFile(path) as archive:
            return {member.filename.removesuffix(".npy"): _npz_member(path, archive, member)
                    for member in archive.infolist()}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise ValueError(f"{path}: not a readable .npz of numeric arrays ({error})") from None


def _npz_member(path: Path, archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> np.ndarray:
    with archive.open(member) as stream:
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(stream)
        if dtype.hasobject:
            raise ValueError(f"array {member.filename!r} holds Python objects")
        declared = math.prod(shape) * dtype.itemsize
        held = member.file_size - stream.tell()
        if declared != held:
            raise ValueError(f"array {member.filename!r} declares shape {shape} of {dtype} ({declared:,} bytes) "
                             f"but holds {held:,} bytes")
    require_memory(declared, f"array {member.filename!r}")
    with archive.open(member) as stream:
        return np.lib.format.read_array(stream, allow_pickle=False)


def save_npz(graph: CSRGraph, path: str | os.PathLike) -> None:
    """Write `graph` as `.npz` (CSR arrays, labels when present)."""
    arrays = {"indptr": graph.indptr, "indices": graph.indices}
    if graph.vlabels is not None:
        arrays["vlabels"] = graph.vlabels
    np.savez(path, **arrays)
