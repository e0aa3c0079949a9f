"""FAERY's datapath as RTL, in Amaranth HDL: one module per block.

- `source`  the corpus stream source (HBM channels, W bytes per channel per cycle)
- `score`   N_E int8 score units, int32 accumulation, pipelined
- `filter`  the filter against the running K-th best, with its buffer (`fifo`)
- `sorter`  the one-score-per-cycle shift-register K-sorter
- `readout` the sorted read-out
- `top`     the blocks joined, with the cycle, stall, pass and peak-fill counters
- `params`  the elaboration parameters, derived from `impls.faery.fpga_model.FpgaConfig`
- `sim`     Amaranth's simulator and Verilator; `synth` yosys resource figures;
  `backend` the fpga-rtl search backend.

See impls/faery/README.md ("RTL") for the structure and a block diagram.
"""
