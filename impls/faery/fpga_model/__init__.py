"""A cycle-level model of the FAERY accelerator.  Every figure it produces is modelled.

The model runs the real data through the accelerator's dataflow, one clock cycle at
a time, so the filter's pass rate and the stalls it causes are the data's own:

    HBM read --> read buffer --> N_E score units --> filter --> filter buffer --> K-selection
    (bytes/cycle)   (backpressure)   (N_E per cycle)   (> K-th best)  (FIFO, 2K deep)   (1 per cycle)

Per cycle, in this order:
1. K-selection takes one score from the filter buffer and inserts it into the running
   top-K.  The new K-th best is forwarded to the filter within the cycle, as SNARY's
   analysis assumes (it is what makes filtering start at cycle K+2).
2. The score units take up to N_E embeddings that arrived in earlier cycles, score
   them, and the filter keeps those strictly above the K-th best (a later item with an
   equal score has a higher id, so it can never enter the top-K).  When the filter
   buffer has fewer than N_E free slots the stage stalls: that is a filter stall.
3. HBM delivers its bandwidth's worth of embeddings into the read buffer, unless the
   buffer is full (then the stall propagates back to memory).

The loop gives the scan cycles; fixed latencies (HBM read, score pipeline, K-selection
pipeline, reading out the k sorted results) are added to give the total, which is the
form of SNARY's closed model L = M/B + C.

`FpgaConfig` is the one description of the accelerator: this model and the RTL in
`impls/faery/rtl/` both derive their parameters from it (the RTL through
`impls.faery.rtl.params`), and the RTL's cycle counts are checked against this loop.  Scores
themselves are computed in float32 (the CPU backend's score kernel) before the loop: they
are data, and their timing is what the loop models.

Deleted rows are still read from HBM (the corpus manager marks them; it does not
compact the corpus) but their score is forced to -inf, so the filter drops them.
One query is processed at a time, as FAERY scans the corpus once per query, so the
modelled throughput of one accelerator is 1 / modelled latency.

Modules:
- `config`: `FpgaConfig`, `layout` (packing and rates), SNARY's closed form;
- `cycles`: the cycle loop, `simulate_scan`, `ScanStats`;
- `queries`: `model_queries` over a corpus, and `sweep` over designs;
- `backend`: the `fpga-model` `Searcher`.
"""

from impls.faery.fpga_model.config import (ARITHMETIC, SELECTORS, SNARY_CLOCK_MHZ, FpgaConfig, Layout,
                                           closed_form_cycles, fixed_latency_cycles, layout)
from impls.faery.fpga_model.cycles import ScanStats, ScanTrace, simulate_scan
from impls.faery.fpga_model.queries import model_queries, sweep

__all__ = ["ARITHMETIC", "SELECTORS", "SNARY_CLOCK_MHZ", "FpgaConfig", "Layout", "ScanStats", "ScanTrace",
           "closed_form_cycles", "fixed_latency_cycles", "layout", "model_queries", "simulate_scan", "sweep"]
