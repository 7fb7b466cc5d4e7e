"""The img2img runner: one validated call into a cached diffusers pipeline."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from PIL import Image

from photobatch.plugins.diffusion.loading import (
    ModelError,
    load_img2img_pipeline,
    model_hash,
    native_size,
    resolve_model,
)


@dataclass(frozen=True)
class RunOutput:
    """What a run produced: the image at working size and what it ran on."""

    image: Image.Image
    model_id: str
    model_hash: str | None
    device: str
    working_size: tuple[int, int]


def working_size(width: int, height: int, native: int) -> tuple[int, int]:
    """About ``native``² pixels with the aspect kept, each side a multiple of 8 (at least 64)."""
    scale = math.sqrt((native * native) / float(width * height))
    w = max(64, int(round(width * scale / 8)) * 8)
    h = max(64, int(round(height * scale / 8)) * 8)
    return w, h


def validate_params(strength: float, steps: int, cfg: float) -> None:
    """Check parameters before any work; messages name the parameter and the bad value."""
    if not 0 < strength <= 1:
        raise ValueError(f"strength must be in (0, 1], got {strength!r}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps!r}")
    if int(steps * strength) < 1:
        raise ValueError(
            f"steps x strength gives no denoising step: int({steps} x {strength}) = 0; "
            f"raise steps to at least {int(1 / strength) + 1}"
        )
    if cfg < 0:
        raise ValueError(f"cfg must be >= 0, got {cfg!r}")


class DiffusersImg2ImgRunner:
    """Global img2img through diffusers' AutoPipelineForImage2Image."""

    name = "img2img"

    def __init__(self, device: str | None = None):
        self._requested_device = device
        self._pipes: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def pipeline(self, model: str):
        """Load (once) and return the pipeline for ``model``, with its ref, device and hash."""
        from photobatch.plugins.diffusion.device import pick_device, pick_dtype

        ref = resolve_model(model)
        device = pick_device(self._requested_device)
        dtype = pick_dtype(device)
        key = (ref.model_id, str(dtype), device)
        with self._lock:
            if key not in self._pipes:
                pipe = load_img2img_pipeline(ref, device, dtype)
                self._pipes[key] = (pipe, ref, device, model_hash(ref))
            return self._pipes[key]

    def run(self, image: Image.Image, recipe, seed: int, model: str) -> RunOutput:
        """Run ``recipe`` on ``image`` (RGB, any size) and return the result at working size."""
        import torch

        from photobatch.plugins.diffusion.samplers import make_scheduler

        validate_params(recipe.strength, recipe.steps, recipe.cfg)
        pipe, ref, device, mhash = self.pipeline(model)
        size = working_size(image.width, image.height, native_size(pipe))
        model_input = image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
        # A fresh scheduler per call: schedulers keep per-run state and pipes are shared.
        scheduler = make_scheduler(recipe.sampler, pipe.scheduler.config)
        # CPU generator: the same seed gives the same noise on every device.
        generator = torch.Generator("cpu").manual_seed(seed)
        with self._lock:
            previous = pipe.scheduler
            pipe.scheduler = scheduler
            try:
                result = pipe(
                    prompt=recipe.prompt,
                    negative_prompt=recipe.negative_prompt or None,
                    image=model_input,
                    strength=recipe.strength,
                    num_inference_steps=recipe.steps,
                    guidance_scale=recipe.cfg,
                    generator=generator,
                ).images[0]
            finally:
                pipe.scheduler = previous
        return RunOutput(result, ref.model_id, mhash, device, size)


__all__ = ["DiffusersImg2ImgRunner", "ModelError", "RunOutput", "working_size", "validate_params"]
