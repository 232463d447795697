"""The trajectory sampler (docs/method.md section 2)."""

from mro.sampling.sampler import DecodeConfig, StepInfo, denoise, generate, start
from mro.sampling.trajectory import PENDING, PREFILLED, Trajectory

__all__ = ["DecodeConfig", "PENDING", "PREFILLED", "StepInfo", "Trajectory", "denoise", "generate", "start"]
