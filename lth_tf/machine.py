"""The processor a task ran on. oneDNN picks its kernels (and so the order of every float sum) by the CPU's
instruction sets: the same seed gives the same numbers on the same kind of CPU, and numbers that differ in
the last bits on another, differences that training then grows (an IMDb task recomputed on another CPU moved
by 0.01-0.02 accuracy points). Each task's metrics name the CPU, so a run resumed elsewhere says which tasks ran
where."""
from __future__ import annotations

import functools
import os

# The instruction sets that change which matrix kernels oneDNN runs (and how fast bfloat16 is).
KERNEL_FEATURES = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8")


@functools.lru_cache(maxsize=1)
def cpu() -> dict:
    """{'model': ..., 'cores': n, 'features': [...]} from /proc/cpuinfo (empty fields where it is absent)."""
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not model:
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
                if model and flags:
                    break
    except OSError:
        pass
    return {"model": model, "cores": os.cpu_count() or 0, "features": [f for f in KERNEL_FEATURES if f in flags]}
