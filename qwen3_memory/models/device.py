"""Which device a model runs on, following the operator's settings, and how OOM is recognised."""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DevicePolicy:
    """``cpu_only`` forbids CUDA; ``gpu_memory_limit_mb`` caps this process's share of the GPU (0: no cap);
    ``fallback_to_cpu`` lets a model that ran out of GPU memory move to the CPU instead of failing."""

    cpu_only: bool = False
    gpu_memory_limit_mb: int = 0
    fallback_to_cpu: bool = True


def choose_device(policy: DevicePolicy) -> str:
    """``cuda`` when present and allowed (applying the memory cap), else ``cpu``."""
    import torch

    if policy.cpu_only or not torch.cuda.is_available():
        return "cpu"
    if policy.gpu_memory_limit_mb > 0:
        total_mb = torch.cuda.get_device_properties(0).total_memory / 2**20
        fraction = min(1.0, policy.gpu_memory_limit_mb / total_mb)
        torch.cuda.set_per_process_memory_fraction(fraction, 0)
        log.info(
            "GPU memory capped at %d MiB (%.0f%% of %s)",
            policy.gpu_memory_limit_mb,
            fraction * 100,
            torch.cuda.get_device_name(0),
        )
    return "cuda"


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA OOM, host MemoryError and the 'out of memory' RuntimeErrors torch raises on CPU."""
    if isinstance(exc, MemoryError):
        return True
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
