"""Sampler names as A1111 users know them, mapped to diffusers schedulers built from_config."""

from __future__ import annotations

# name -> (diffusers scheduler class, config overrides)
SAMPLER_MAP: dict[str, tuple[str, dict]] = {
    "Euler": ("EulerDiscreteScheduler", {}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "DPM++ 2M Karras": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "use_karras_sigmas": True},
    ),
    "DDIM": ("DDIMScheduler", {}),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "PNDM": ("PNDMScheduler", {}),
}


def make_scheduler(name: str, base_config):
    """Build the scheduler for sampler ``name`` from the model's own scheduler config."""
    import diffusers

    try:
        class_name, overrides = SAMPLER_MAP[name]
    except KeyError:
        known = ", ".join(SAMPLER_MAP)
        raise ValueError(f"sampler must be one of {known}; got {name!r}") from None
    cls = getattr(diffusers, class_name)
    return cls.from_config(base_config, **overrides)
