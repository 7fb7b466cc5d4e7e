"""ControlNet: load the model and compute the control image from the source photo.

For recipes that must keep the photo's structure at higher strengths (a season change that
must not move the buildings): canny edges of the source, its depth map (``depth``), or the
source itself for tile or recolour ControlNets.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from photobatch.plugins.diffusion.loading import load_component
from photobatch.plugins.diffusion.sources import ModelError


def load_controlnet(model: str, device: str, dtype, family: str = "sd1"):
    """Load a ControlNet from a diffusers folder, a single .safetensors file or a hub id: a
    ControlNet or a Union ControlNet (SDXL) for SD models, a FLUX.1 ControlNet (plain or
    Union) for FLUX.1; the class comes from the folder's config, and one made for another
    family is refused by name."""
    from diffusers import AutoModel, ControlNetModel

    def single_file(path):
        if family == "flux":
            # diffusers reads FLUX.1 ControlNets in its own layout only.
            raise ModelError(f"controlnet {path.name}: FLUX.1 ControlNets load from a diffusers "
                             "folder or hub id (e.g. InstantX/FLUX.1-dev-Controlnet-Canny), not a "
                             "single file")
        if _union_weights(path):
            raise ModelError(f"controlnet {path.name}: a Union ControlNet loads from a diffusers "
                             "folder or hub id (its config.json beside the weights, e.g. "
                             "xinsir/controlnet-union-sdxl-1.0), not a single file")
        return ControlNetModel.from_single_file(str(path), dtype=dtype)

    net = load_component(
        "controlnet", model, device,
        from_file=single_file,
        from_folder=lambda path: AutoModel.from_pretrained(str(path), dtype=dtype),
        from_hub=lambda name, cache_only: AutoModel.from_pretrained(
            name, dtype=dtype, local_files_only=cache_only))
    problem = family_problem(type(net).__name__, family, model)
    if problem:
        raise ModelError(problem)
    return net


# The ControlNet classes each kind of model takes (False: SD 1.x, 2.x, SDXL; True: FLUX.1).
_CLASSES = {False: ("ControlNetModel", "ControlNetUnionModel"), True: ("FluxControlNetModel",)}


def family_problem(kind: str, family: str, model: str) -> str | None:
    """Why a ControlNet of class ``kind`` cannot run on a ``family`` model, or None."""
    if kind not in _CLASSES[True] + _CLASSES[False]:
        return f"controlnet {model} is a {kind}, not a ControlNet"
    if kind not in _CLASSES[family == "flux"]:
        made_for, this = ("FLUX.1", "an SD model") if family != "flux" else ("SD models", "FLUX.1")
        return f"controlnet {model} is a {kind}, made for {made_for}; the recipe's model is {this}"
    if kind == "ControlNetUnionModel" and family != "sdxl":
        return f"controlnet {model} is an SDXL Union ControlNet; the recipe's model is not SDXL"
    return None


def folder_problem(source: str, unit, family: str) -> str | None:
    """Why the ControlNet ``unit`` (its model at ``source``) cannot run on a ``family`` model,
    as far as a local folder's config.json, or a hub id's cached one, tells without loading
    anything (the class, and a Union ControlNet's condition types); None when it can, or when
    nothing local tells."""
    import json
    from pathlib import Path

    from photobatch.plugins.diffusion.sources import cached_snapshot, names_a_path
    from photobatch.plugins.diffusion.union import mode_count, mode_index

    folder = Path(source).expanduser()
    if not folder.is_dir() and not names_a_path(source):
        folder = Path(cached_snapshot(source) or folder)
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    problem = family_problem(str(config.get("_class_name")), family, source)
    if problem:
        return problem
    try:
        mode_index(unit, mode_count(config), family)
    except ValueError as exc:
        return str(exc)
    return None


def _union_weights(path) -> bool:
    # xinsir's weights carry their condition-type embedding by this name in any layout.
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return any(key.endswith("task_embedding") for key in f.keys())
    except Exception:  # noqa: BLE001 - not readable: from_single_file says why
        return False


def canny_edges(image: Image.Image, sigma: float = 2.0) -> Image.Image:
    """White-on-black canny edges of ``image`` as RGB, what canny ControlNets were trained on."""
    from skimage import feature

    gray = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    # Thresholds relative to the gradient range so dark and bright photos both give edges.
    edges = feature.canny(gray, sigma=sigma, low_threshold=0.1, high_threshold=0.2,
                          use_quantiles=False)
    pixels = (edges * 255).astype(np.uint8)
    return Image.fromarray(np.stack([pixels] * 3, axis=-1))


def control_image(image: Image.Image, preprocessor: str, estimator=None) -> Image.Image:
    """The control image for ``preprocessor`` ("canny", "depth" or "none") at ``image``'s size;
    "depth" runs ``estimator`` (the depth model, a ``helper_models.HelperModel``)."""
    if preprocessor == "canny":
        return canny_edges(image)
    if preprocessor == "none":
        return image.convert("RGB")
    if preprocessor == "depth":
        from photobatch.plugins.diffusion.depth import depth_map

        if estimator is None:
            raise ValueError("the depth preprocessor needs a depth estimator")
        return depth_map(estimator, image)
    raise ValueError(f"controlnet preprocessor must be 'canny', 'depth' or 'none', got {preprocessor!r}")


def control_arguments(units, sources: list[Image.Image], estimator_for) -> dict:
    """The pipeline keyword arguments for ControlNet ``units`` on ``sources`` (the images the
    control images are computed from, at the working size); ``estimator_for(source)`` gives
    the depth estimator a "depth" unit names. Several units take one image (diffusers gives
    several ControlNets one control image each, not one per image)."""
    per_unit = []
    for unit in units:
        estimator = estimator_for(unit.estimator) if unit.estimator else None
        per_unit.append([control_image(src, unit.preprocessor, estimator) for src in sources])
    if len(units) == 1:
        arguments = {"control_image": per_unit[0], "controlnet_conditioning_scale": units[0].scale}
    else:
        if len(sources) != 1:
            raise ValueError(f"several ControlNets take one image a call, got {len(sources)}")
        arguments = {"control_image": [images[0] for images in per_unit],
                     "controlnet_conditioning_scale": [unit.scale for unit in units]}
    arguments["control_guidance_start"] = [unit.guidance_start for unit in units]
    arguments["control_guidance_end"] = [unit.guidance_end for unit in units]
    return arguments
