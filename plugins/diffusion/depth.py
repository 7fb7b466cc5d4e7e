"""Depth maps for depth ControlNets: a transformers depth estimator (Depth Anything, DPT/MiDaS)
run on the model's input, as A1111's depth preprocessors do.

Depth ControlNets were trained on MiDaS-style relative inverse depth: near is bright, far is
dark, stretched over the whole 0-255 range per image. Depth Anything and DPT predict exactly
that quantity, so the map is their output, scaled to the image's size and range.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from photobatch.plugins.diffusion.helper_models import HelperModel, load_helper_model


def load_depth_estimator(source: str, device: str) -> HelperModel:
    """Load a depth estimator from a transformers folder or a hub id (offline: the HF cache)."""
    return load_helper_model("depth model", source, device, "AutoModelForDepthEstimation")


def depth_map(estimator: HelperModel, image: Image.Image) -> Image.Image:
    """``image``'s depth as an RGB picture of the same size: near bright, far dark, over 0-255."""
    import torch

    rgb = image.convert("RGB")
    with torch.inference_mode():
        inputs = estimator.processor(images=rgb, return_tensors="pt").to(estimator.device)
        outputs = estimator.model(**inputs)
        post = getattr(estimator.processor, "post_process_depth_estimation", None)
        if post is not None:
            depth = post(outputs, target_sizes=[(rgb.height, rgb.width)])[0]["predicted_depth"]
        else:
            depth = torch.nn.functional.interpolate(
                outputs.predicted_depth[:, None], size=(rgb.height, rgb.width), mode="bicubic",
                align_corners=False)[0, 0]
    depth = depth.float().cpu().numpy()
    low, high = float(np.min(depth)), float(np.max(depth))
    if not (np.isfinite(low) and np.isfinite(high)) or high <= low:
        # A flat (or broken) estimate carries no structure: an empty map conditions nothing.
        pixels = np.zeros(depth.shape, dtype=np.uint8)
    else:
        pixels = np.round((depth - low) / (high - low) * 255.0).astype(np.uint8)
    return Image.fromarray(np.stack([pixels] * 3, axis=-1))
