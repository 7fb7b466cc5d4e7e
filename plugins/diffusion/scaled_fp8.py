"""Checkpoints whose weights are stored scaled: ComfyUI's "fp8 scaled" files.

Such a file keeps each large weight in float8 divided by a scale, and the scale beside it
(``X.scale_weight`` in ComfyUI's first form, marked by a ``scaled_fp8`` tensor; ``X.weight_scale``
in its later one, with ``X.input_scale`` for fp8 matmuls). diffusers' single-file loaders do not
know the scales: they read the float8 numbers as the weights and the model draws noise, without
an error. So photobatch multiplies the scales back in before diffusers reads the file
(per-tensor and per-output-channel scales, the forms fp8 files use), and refuses by name what
it cannot (block-wise or 4-bit forms), before any photo.
"""

from __future__ import annotations

from pathlib import Path

# Tensor names that say a file holds scaled weights, and those that are only for fp8 matmuls
# (not weights: left out once the weights are whole again).
_SCALE_SUFFIXES = (".scale_weight", ".weight_scale")
_DROPPED_SUFFIXES = (".scale_input", ".input_scale", ".comfy_quant", ".weight_scale_2")
_MARKERS = ("scaled_fp8", "model.diffusion_model.scaled_fp8")
_FLOAT8 = ("F8_E4M3", "F8_E5M2")


def is_scaled(keys) -> bool:
    """Whether a checkpoint with tensors ``keys`` stores its weights scaled."""
    return any(k in _MARKERS or k.endswith(_SCALE_SUFFIXES + (".comfy_quant",)) for k in keys)


def scaled_problem(path: str | Path) -> str | None:
    """Why the scaled file at ``path`` cannot be read whole again (None: it can, or it is not
    scaled); reads its header only."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as fh:
        keys = set(fh.keys())
        if not is_scaled(keys):
            return None
        for key in keys:
            if not key.endswith(_SCALE_SUFFIXES):
                continue
            weight = _weight_of(key)
            if weight not in keys:
                continue
            shape, dtype = fh.get_slice(weight).get_shape(), fh.get_slice(weight).get_dtype()
            scale = fh.get_slice(key).get_shape()
            if dtype not in _FLOAT8 or not _broadcasts(scale, shape):
                return (f"model {Path(path).name} stores its weights quantised in a form photobatch "
                        f"cannot make whole again ({weight}: {dtype}, scale of shape "
                        f"{list(scale)}); use the model's bf16 or plain fp8 file")
    return None


def dequantised(path: str | Path, dtype) -> dict:
    """The tensors of the scaled file at ``path`` with each scaled weight multiplied back by
    its scale, in ``dtype`` (the precision the model loads in), and the fp8-matmul tensors left
    out: what diffusers' converters read as an ordinary checkpoint."""
    from safetensors.torch import load_file

    problem = scaled_problem(path)
    if problem:
        raise ValueError(problem)
    tensors = load_file(str(path))
    out = {}
    for key, value in tensors.items():
        if key in _MARKERS or key.endswith(_SCALE_SUFFIXES + _DROPPED_SUFFIXES):
            continue
        scale = next((tensors[key[:-len("weight")] + s.lstrip(".")] for s in _SCALE_SUFFIXES
                      if key.endswith(".weight") and key[:-len("weight")] + s.lstrip(".") in tensors), None)
        if scale is None:
            out[key] = value.to(dtype) if value.is_floating_point() else value
            continue
        scale = scale.float().reshape(-1, *([1] * (value.ndim - 1))) if scale.numel() > 1 else scale.float()
        out[key] = (value.float() * scale).to(dtype)
    return out


def _weight_of(scale_key: str) -> str:
    for suffix in _SCALE_SUFFIXES:
        if scale_key.endswith(suffix):
            return scale_key[:-len(suffix)] + ".weight"
    return scale_key


def _broadcasts(scale: list[int], weight: list[int]) -> bool:
    """A per-tensor scale, or one per output channel."""
    count = 1
    for side in scale:
        count *= side
    return count == 1 or (count == weight[0] and all(side in (1, weight[0]) for side in scale))


__all__ = ["dequantised", "is_scaled", "scaled_problem"]
