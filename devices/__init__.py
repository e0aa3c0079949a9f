"""The backend layer: backend names, probes that prove a backend works, device contexts, timers.

Everything above it (harness, impls, baselines, the test suites) asks this layer
whether a backend can run and which device it runs on; nothing probes on its own.
"Available" means a tiny kernel was built and run and gave the right answer.

- `devices.probes`: `BACKENDS`, `probe(name)`, `probe_all()`, `can_run(...)`;
- `devices.opencl`: the one OpenCL context of the process (`RECMINE_OPENCL_DEVICE` picks it);
- `devices.cuda`: cupy with its install hint, CUDA occupancy and allocation helpers;
- `devices.timers`: host and CUDA-event timers.
"""

from devices.probes import BACKENDS, BackendInfo, can_run, gpu_count, probe, probe_all

__all__ = ["BACKENDS", "BackendInfo", "can_run", "gpu_count", "probe", "probe_all"]
