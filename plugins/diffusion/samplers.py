"""Sampler names as A1111 users know them, mapped to diffusers schedulers built from_config
(diffusers' own table: docs/source/en/api/schedulers/overview.md)."""

from __future__ import annotations

from photobatch.recipes.runner_fields import schedule_problem

# name -> (diffusers scheduler class, config overrides)
SAMPLER_MAP: dict[str, tuple[str, dict]] = {
    "Euler": ("EulerDiscreteScheduler", {}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "DPM++ 2M Karras": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "use_karras_sigmas": True},
    ),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "DPM++ 2M SDE Karras": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True},
    ),
    # Stochastic (needs torchsde); order 2, so it calls the UNet about twice per step.
    "DPM++ SDE": ("DPMSolverSDEScheduler", {}),
    "DPM++ SDE Karras": ("DPMSolverSDEScheduler", {"use_karras_sigmas": True}),
    # Order 2 as well (two UNet calls a step), like Heun.
    "DPM2": ("KDPM2DiscreteScheduler", {}),
    "DPM2 Karras": ("KDPM2DiscreteScheduler", {"use_karras_sigmas": True}),
    "DPM2 a": ("KDPM2AncestralDiscreteScheduler", {}),
    "DPM2 a Karras": ("KDPM2AncestralDiscreteScheduler", {"use_karras_sigmas": True}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "LMS Karras": ("LMSDiscreteScheduler", {"use_karras_sigmas": True}),
    "DDIM": ("DDIMScheduler", {}),
    "UniPC": ("UniPCMultistepScheduler", {}),
    # Latent consistency: meant for LCM models or an LCM-LoRA, 4-8 steps at CFG 1-2.
    "LCM": ("LCMScheduler", {}),
    "PNDM": ("PNDMScheduler", {}),
    "DEIS": ("DEISMultistepScheduler", {}),
    # A1111's third-order SDE sampler, favoured for SDXL (stochastic: the call's generators).
    "DPM++ 3M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 3}),
    # Trajectory consistency: for TCD LoRAs (h1t/TCD-SDXL-LoRA), 4-8 steps at CFG about 1; its
    # gamma (the pipelines' eta) is TCD_GAMMA.
    "TCD": ("TCDScheduler", {}),
}
# TCD's stochasticity (its authors' and diffusers' docs' default), passed as the pipelines' eta.
TCD_GAMMA = 0.3

# A1111's "Schedule type" (ComfyUI's "scheduler"): how a sampler's steps are spread over the
# noise levels, as diffusers' table maps them (Karras: use_karras_sigmas, SGM Uniform:
# timestep_spacing "trailing"). "Automatic" leaves the sampler's and the model's own.
SCHEDULE_MAP: dict[str, dict] = {
    "Automatic": {},
    "Karras": {"use_karras_sigmas": True},
    "Exponential": {"use_exponential_sigmas": True},
    "Beta": {"use_beta_sigmas": True},
    "SGM Uniform": {"timestep_spacing": "trailing"},
}


def make_scheduler(name: str, base_config, seeds=None, schedule: str = "Automatic"):
    """Build the scheduler for sampler ``name`` with ``schedule`` from the model's own scheduler
    config, for a call on images with ``seeds`` (one each)."""
    import diffusers

    try:
        class_name, overrides = SAMPLER_MAP[name]
    except KeyError:
        known = ", ".join(SAMPLER_MAP)
        raise ValueError(f"sampler must be one of {known}; got {name!r}") from None
    problem = schedule_problem(name, schedule)
    if problem:
        raise ValueError(f"schedule {problem}")
    overrides = {**overrides, **SCHEDULE_MAP[schedule]}
    cls = getattr(diffusers, class_name)
    if class_name == "DPMSolverSDEScheduler" and seeds is not None:
        # Its noise comes from a Brownian tree, not from the call's generators; left unseeded
        # the tree draws its own seed, and the recorded seed would not reproduce the picture.
        # One tree per image, seeded with that image's seed: batched = one at a time.
        overrides = {**overrides, "noise_sampler_seed": [int(s) for s in seeds]}
    # Karras sigmas are not defined for every prediction setting a model ships; the config keys
    # a scheduler does not know are ignored by from_config.
    return cls.from_config(base_config, **overrides)


def inference_steps(steps: int, strength: float, exact: bool) -> int:
    """The ``num_inference_steps`` to ask diffusers for.

    diffusers (and A1111 by default) run ``int(steps * strength)`` denoising steps. With
    ``exact`` (A1111's "do exactly the amount of steps the slider specifies") the schedule is
    stretched so that exactly ``steps`` denoising steps run whatever the strength.
    """
    if not exact or strength >= 1:
        return steps
    n = max(steps, int(steps / strength))
    while int(n * strength) < steps:
        n += 1
    return n
