"""A1111's Refiner for SDXL: a second model takes over the last part of the denoising.

diffusers hands over in latent space: the base pipeline stops at ``denoising_end`` and returns
its latents, the refiner starts from them at ``denoising_start`` (both fractions of the whole
noise schedule). A1111's "Switch at" is a fraction of the steps the job really runs; for
img2img those start at the strength's noise level, so switching after ``switch_at`` of them
is the noise level ``1 - strength * (1 - switch_at)`` of the whole schedule.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from photobatch.plugins.diffusion.adapters import apply_ip_adapter, apply_loras
from photobatch.plugins.diffusion.memory import set_vae_tiling
from photobatch.plugins.diffusion.prompts import prompt_arguments
from photobatch.plugins.diffusion.samplers import make_scheduler


def handover(strength: float, switch_at: float) -> float:
    """The point of the whole noise schedule (0-1, diffusers' ``denoising_end``) where the
    refiner takes over after ``switch_at`` of the steps an img2img at ``strength`` runs."""
    return 1.0 - strength * (1.0 - switch_at)


def refiner_problem_for_families(base, refiner, base_name: str, refiner_name: str) -> str | None:
    """Why a model of family ``base`` cannot hand over to one of family ``refiner`` (None:
    it can, or a family is not known yet)."""
    if base is not None and base.name != "sdxl":
        return f"the refiner needs an SDXL model; {base_name} is {base.label}"
    if refiner is not None and refiner.name != "sdxl":
        return f"the refiner {refiner_name} is {refiner.label}, not an SDXL model"
    return None


def refiner_problem(loaded, refiner_loaded, settings) -> str | None:
    """Why this run cannot hand over to a refiner (a sentence), or None when it can."""
    problem = refiner_problem_for_families(loaded.info.family, refiner_loaded.info.family,
                                           loaded.ref.model_id, refiner_loaded.ref.model_id)
    if problem:
        return problem
    if settings.controlnets:
        return "the refiner does not go with controlnet (diffusers' ControlNet pipelines cannot hand over)"
    return None


@dataclass
class RefinerPass:
    """The refiner's half of one generate() call, ready to run on the base's latents."""

    loaded: object  # the refiner's LoadedModel
    pipe: object
    settings: object
    count: int
    size: tuple[int, int]
    start: float  # diffusers' denoising_start (the base's denoising_end)
    masks: list | None = None  # inpainting: the refiner works inside the same masks

    def __call__(self, latents, generators, seeds, num_inference_steps: int):
        """Finish ``latents`` from the base; returns the pictures as floats (n, h, w, 3)."""
        settings = self.settings
        with self.loaded.lock:
            previous = self.pipe.scheduler
            try:
                # The refiner gets the prompts only: the base's LoRAs, embeddings and IP-Adapter
                # were made for the base (and one a recipe left on this model is taken off).
                apply_loras(self.pipe, self.loaded, [])
                apply_ip_adapter(self.pipe, self.loaded, None)
                plain = replace(settings, loras=(), embeddings=(), ip_adapter=None)
                arguments = prompt_arguments(self.pipe, self.loaded, plain, self.count)
                set_vae_tiling(self.pipe, *self.size, self.loaded.memory_level)
                self.pipe.scheduler = make_scheduler(settings.sampler, previous.config, seeds,
                                                     settings.schedule)
                if self.masks is not None:
                    width, height = self.size
                    arguments.update(mask_image=list(self.masks), width=width, height=height)
                return self.pipe(image=latents, strength=settings.strength,
                                 num_inference_steps=num_inference_steps,
                                 denoising_start=self.start, guidance_scale=settings.cfg,
                                 output_type="np", generator=generators, **arguments).images
            finally:
                self.pipe.scheduler = previous


def prepare_refiner(cache, loaded, settings, task: str, count: int, size: tuple[int, int],
                    masks=None) -> RefinerPass:
    """Load the recipe's refiner (once, cached like any model) and check it can take over;
    for inpainting (``masks``) it refines inside the same masks, as diffusers' docs do it."""
    refiner_loaded = cache.get(settings.resolve_path(settings.refiner.model), None)
    problem = refiner_problem(loaded, refiner_loaded, settings)
    if problem:
        raise ValueError(problem)
    pipe = cache.task_pipe(refiner_loaded, task)
    return RefinerPass(refiner_loaded, pipe, settings, count, size,
                       handover(settings.strength, settings.refiner.switch_at),
                       masks if task == "inpaint" else None)
