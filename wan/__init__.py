"""The discrete-event WAN that Ekko and its baselines run on (a shared floor below impls/ and baselines/).

- `wan.network`: data centres of servers with full-duplex NICs, optional shared DC-pair links,
  a latency matrix, pass-through (cut-through) transfers, faults and bytes per NIC.
- `wan.latency`: the testbed's one-way latency matrix: `geo`, `uniform:MS` or a CSV file, validated.
- `wan.metrics`: latency figures with the physical floor beside them, and the spread of NIC bytes.
- `wan.wire`: wire sizes every system on this WAN uses, so that byte counts compare.
"""
