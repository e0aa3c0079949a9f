"""The named graph workloads: citeseer (shipped), kron12 and kron16..kron22, urand16..urand20.

Ground truth keys: a pattern name ("triangle", "4-clique", "5-clique",
"4-cycle", "diamond") holds the edge-induced (non-induced) count, as in the
paper's SL; "3-motifs" and "4-motifs" hold vertex-induced counts by pattern name.
Sizes are recorded from the shipped file and from the seeded generators (the
tests check them against freshly loaded and generated graphs: citeseer, kron16, urand16).
"""

from __future__ import annotations

from pathlib import Path

from workloads.catalog import Workload, register
from workloads.graphs.generators import kron, urand
from workloads.graphs.io import load_graphminer

CITESEER_PREFIX = Path(__file__).resolve().parent.parent / "data" / "citeseer" / "graph"

CITESEER_GROUND_TRUTH = {
    "triangle": 1166,
    "4-clique": 255,
    "5-clique": 46,
    "4-cycle": 6059,
    "diamond": 3730,
    "3-motifs": {"wedge": 23380, "triangle": 1166},
    "4-motifs": {"4-path": 111153, "3-star": 222630, "4-cycle": 3094,
                 "tailed-triangle": 22900, "diamond": 2200, "4-clique": 255},
}

# Edge-induced counts on kron12 (the default seed), from dense adjacency-matrix
# algebra (codegrees from A @ A; 4-cliques as edges inside each edge's common
# neighbourhood), independent of any miner; tests/g2miner/test_counts.py recomputes them.
KRON12_GROUND_TRUTH = {"triangle": 480954, "4-clique": 3961142, "4-cycle": 52818351, "diamond": 56771716}

# |V|, |E| (undirected, after cleaning) and max degree of the seeded graphs,
# as `kron(scale)` / `urand(2**scale, 32)` produce them with the default seed.
KRON_SIZES = {
    12: (4096, 48381, 1321),  # a small skewed graph for the quick tier
    16: (65536, 909309, 9764),
    17: (131072, 1864144, 15794),
    18: (262144, 3806657, 25381),
    19: (524288, 7741204, 40517),
    20: (1048576, 15700756, 64242),
    21: (2097152, 31768115, 103022),
    22: (4194304, 64153378, 162965),
}
URAND_SIZES = {
    16: (65536, 1048289, 57),
    18: (262144, 4194064, 64),
    20: (1048576, 16776954, 66),
}

URAND_AVG_DEGREE = 32  # the same edge count per vertex as kron's edge factor 16


def _size(vertices: int, edges: int, max_degree: int) -> dict[str, float]:
    return {"vertices": vertices, "edges": edges, "max_degree": max_degree}


register(Workload(
    name="citeseer", kind="graph", tier="quick",
    description="CiteSeer citation graph (3,312 vertices, 4,536 edges, 6 vertex labels), GraphMiner binary format",
    load=lambda: load_graphminer(CITESEER_PREFIX, "citeseer"),
    size=_size(3312, 4536, 99),
    ground_truth=CITESEER_GROUND_TRUTH,
    source="LINQS CiteSeer, as distributed with GraphMiner (shipped in workloads/data/citeseer)",
))

for _scale, _known in KRON_SIZES.items():
    register(Workload(
        name=f"kron{_scale}", kind="graph", tier="quick" if _scale <= 16 else "full",
        description=f"Graph500 Kronecker graph, scale {_scale}, edge factor 16 (A=0.57, B=C=0.19), symmetrised",
        load=lambda scale=_scale: kron(scale),
        size=_size(*_known),
        ground_truth=KRON12_GROUND_TRUTH if _scale == 12 else {},
    ))

for _scale, _known in URAND_SIZES.items():
    register(Workload(
        name=f"urand{_scale}", kind="graph", tier="quick" if _scale <= 16 else "full",
        description=f"uniform random graph, 2^{_scale} vertices, average degree {URAND_AVG_DEGREE}",
        load=lambda scale=_scale: urand(1 << scale, URAND_AVG_DEGREE, name=f"urand{scale}"),
        size=_size(*_known),
    ))
