"""Pick the compute device and dtype: cuda > mps > cpu; half precision on GPUs, fp32 on CPU."""

from __future__ import annotations

import os


def pick_device(requested: str | None = None) -> str:
    """Return the device to run on; ``requested`` (or PHOTOBATCH_DEVICE) overrides 'auto'."""
    import torch

    requested = requested or os.environ.get("PHOTOBATCH_DEVICE") or "auto"
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(device: str):
    """fp16 on CUDA/MPS (bf16 where CUDA supports it), fp32 on CPU (half is slow or missing)."""
    import torch

    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.startswith("mps"):
        return torch.float16
    return torch.float32
