"""Flow-matching models (SD 3.x, FLUX.1, FLUX.2, Qwen-Image, Z-Image): what they can run,
their samplers and prompts.

These families are transformers trained on a flow (rectified-flow) objective. In diffusers their
img2img and inpainting pipelines noise the photo with ``scheduler.scale_noise`` and hand the
scheduler custom sigmas (FLUX.1) with a resolution-dependent shift; only the flow-matching
schedulers do both, so the sampler names that run are the ones those schedulers implement:
Euler (the models' own), Euler a (Euler with fresh noise each step, diffusers'
``stochastic_sampling``) and LCM (for LCM-distilled flow models). The multistep SD samplers
(DPM++, UniPC, DDIM, ...) have no flow form in diffusers' img2img pipelines and are refused by
name instead of being swapped silently for another.

Guidance: SD 3.x uses classifier-free guidance with a negative prompt, as SD does. FLUX.1 is
guidance-distilled: ``cfg`` is its distilled guidance (what diffusers calls ``guidance_scale``
and Forge "Distilled CFG"; 2.5-4 for FLUX.1 [dev], ignored by [schnell]) and it runs no
negative prompt, so a recipe with one is refused on FLUX.1 rather than recorded as if it had run.
Z-Image reads Qwen3's hidden states and runs classifier-free guidance, but diffusers' Z-Image
pipelines count it from 0 (their ``guidance_scale`` w gives cond + w (cond - uncond)): ``cfg``
means here what it means for SD, in A1111 and in ComfyUI (uncond + cfg (cond - uncond), 1 is
off), so the pipeline is given cfg - 1. Z-Image Turbo runs without guidance (cfg 1); a
negative prompt at cfg 1 is refused like FLUX.1's. FLUX.2 [klein] reads Qwen3 too, with SD's
classifier-free guidance in its base models; its distilled ones (``is_distilled``) run none, so
there a cfg above 1 or a negative prompt is refused rather than recorded as if it had run.
FLUX.2 [dev] is guidance-distilled as FLUX.1 is: ``cfg`` is its distilled guidance (4 in BFL's
examples) and a negative prompt is refused on it. Qwen-Image runs classifier-free guidance as SD
counts it, which its diffusers pipelines call ``true_cfg_scale`` (their ``guidance_scale`` is
for guidance-distilled transformers it lacks).

A single .safetensors file of these families holds the transformer (a fine-tune is shared that
way); the rest of the pipeline comes from ``model_config``. LoRAs load through the pipelines' own
loaders, and FLUX.1 takes FLUX.1 ControlNets (diffusers' FluxControlNet img2img and inpainting
pipelines) and FLUX.1 IP-Adapters (XLabs' layout). The features built on SD's UNet and CLIP
encoders (PAG, FreeU, the SDXL refiner, textual inversion, A1111 prompt weights) are refused for
these families with a sentence saying so.
"""

from __future__ import annotations

from photobatch.plugins.diffusion.families import EDIT_VARIANTS, Family

# The denoiser class a single file's transformer is read into, by family.
TRANSFORMER_CLASSES = {"flux": "FluxTransformer2DModel", "sd3": "SD3Transformer2DModel",
                       "flux2": "Flux2Transformer2DModel", "qwenimage": "QwenImageTransformer2DModel",
                       "zimage": "ZImageTransformer2DModel"}

# name -> (diffusers scheduler class, config overrides)
FLOW_SAMPLERS: dict[str, tuple[str, dict]] = {
    "Euler": ("FlowMatchEulerDiscreteScheduler", {}),
    "Euler a": ("FlowMatchEulerDiscreteScheduler", {"stochastic_sampling": True}),
    "LCM": ("FlowMatchLCMScheduler", {}),
}
# A1111's schedule types the flow-matching Euler scheduler has (SGM Uniform is a timestep
# spacing, which flow schedulers do not have).
FLOW_SCHEDULES: dict[str, dict] = {
    "Automatic": {},
    "Karras": {"use_karras_sigmas": True},
    "Exponential": {"use_exponential_sigmas": True},
    "Beta": {"use_beta_sigmas": True},
}


def _redux(settings) -> bool:
    from photobatch.plugins.diffusion.redux import is_redux

    return is_redux(settings.resolve_path(settings.ip_adapter.model))


def true_cfg_problem(family: Family, variant: str | None = None) -> str:
    """Why true_cfg cannot run on a ``family`` model other than FLUX.1 (``variant`` "dev": FLUX.2
    [dev], whose cfg is distilled guidance too)."""
    if variant == "dev":
        return ("true_cfg is for FLUX.1 models; FLUX.2 [dev]'s pipeline runs no true CFG (its cfg "
                "is distilled guidance, with no negative prompt): set true_cfg under [family.flux]")
    return (f"true_cfg is for FLUX.1 models, whose cfg is distilled guidance; on {family.label} "
            "cfg is classifier-free guidance already: set true_cfg under [family.flux]")


def flow_problem(settings, family: Family, variant: str | None = None,
                 distilled: bool = False) -> str | None:
    """Why ``settings`` (RunSettings) cannot run on a ``family`` flow model (``variant``:
    "kontext" or "fill", a FLUX.1 model of that kind; ``distilled``: a guidance-distilled
    FLUX.2 [klein]), as a sentence for the user, or None when they can."""
    # What the model cannot take at all first: no sampler choice would mend that.
    return (_parts_problem(settings, family, variant)
            or _guidance_problem(settings, family, distilled, variant)
            or _prompt_problem(settings, family) or _sampler_problem(settings, family))


def _parts_problem(settings, family: Family, variant: str | None) -> str | None:
    """What the recipe adds that the model's pipelines cannot take."""
    label = family.label
    if variant in EDIT_VARIANTS and settings.working_size:
        return ("working_size is not read by Qwen-Image-Edit models: diffusers' Edit pipeline "
                "scales every photo to about a megapixel itself; leave working_size out for them")
    if settings.controlnets and variant == "kontext":
        return ("controlnet does not run on FLUX.1 Kontext models (diffusers has no Kontext "
                "ControlNet pipeline); Kontext keeps the photo's structure by reading the photo "
                "itself")
    if settings.true_cfg > 1 and family.name != "flux":
        return true_cfg_problem(family, variant)
    if settings.true_cfg > 1 and variant == "fill":
        return "true_cfg does not go with FLUX.1 Fill models: diffusers' Fill pipeline runs no true CFG"
    if settings.true_cfg > 1 and settings.controlnets:
        return ("true_cfg does not go with controlnet: diffusers' FLUX.1 ControlNet pipelines run "
                "no true CFG")
    # An IP-Adapter where Fill or a ControlNet would need to take it: FLUX.1 Redux conditions
    # through the prompt, so it goes where IP-Adapters cannot (asked only then: a look on disk).
    native = settings.ip_adapter is not None and settings.ip_adapter.native
    adapter = (settings.ip_adapter is not None and (variant == "fill" or bool(settings.controlnets))
               and not native and not _redux(settings))
    if variant == "fill" and (settings.controlnets or adapter):
        what = "controlnet" if settings.controlnets else "ip_adapter"
        return (f"{what} does not run on FLUX.1 Fill models (diffusers' Fill pipeline takes "
                "neither ControlNets nor IP-Adapters; FLUX.1 Redux, which conditions through the "
                "prompt, does)")
    if settings.controlnets and family.name != "flux":
        return (f"controlnet runs on SD 1.x, 2.x, SDXL and FLUX.1 models; diffusers has no "
                f"{label} ControlNet img2img pipeline")
    if adapter and settings.controlnets:
        return (f"ip_adapter does not go with controlnet on {label} models: diffusers' "
                f"{label} ControlNet pipelines take no IP-Adapter (FLUX.1 Redux, which "
                "conditions through the prompt, does)")
    if settings.ip_adapter is not None and family.name != "flux" and not native:
        return (f"ip_adapter runs on SD 1.x, 2.x, SDXL and FLUX.1 models; photobatch has no "
                f"{label} IP-Adapter")
    unet_only = [name for name, used in (
        ("pag", settings.pag is not None), ("freeu", settings.freeu is not None),
        ("refiner", settings.refiner is not None), ("embeddings", bool(settings.embeddings)),
        ("vae", settings.vae is not None)) if used]
    if unet_only:
        return (f"{', '.join(unet_only)} {'is' if len(unet_only) == 1 else 'are'} for SD 1.x, 2.x "
                f"and SDXL models, not {label}; leave {'it' if len(unet_only) == 1 else 'them'} "
                "out of recipes for this model")
    return None


def _guidance_problem(settings, family: Family, distilled: bool, variant: str | None) -> str | None:
    """A cfg or negative prompt the model would not read (said rather than ignored: the catalog
    records what ran)."""
    label = family.label
    if settings.negative_prompt and variant == "dev":
        return ("negative_prompt is not read by FLUX.2 [dev] models (guidance-distilled, cfg is "
                "their distilled guidance and they run no negative prompt); empty it for them: "
                "negative_prompt = \"\" under [family.flux2_dev]")
    if settings.negative_prompt and family.name == "flux" and settings.true_cfg <= 1:
        return ("negative_prompt is not read by FLUX.1 models (guidance-distilled, they run no "
                "negative prompt); empty it for them: negative_prompt = \"\" under [family.flux], "
                "or run it with true_cfg above 1 there (each step then runs twice)")
    if family.name == "flux2" and distilled and (settings.cfg > 1 or settings.negative_prompt):
        what = "cfg above 1" if settings.cfg > 1 else "negative_prompt"
        return (f"{what} is not read by distilled FLUX.2 [klein] models (they run no "
                "classifier-free guidance): set cfg = 1.0 and negative_prompt = \"\" under "
                "[family.flux2], or run the base model (FLUX.2-klein-base) for guidance")
    if settings.negative_prompt and family.name in ("zimage", "flux2", "qwenimage") and settings.cfg <= 1:
        how = " (classifier-free guidance off, how Z-Image Turbo runs)" if family.name == "zimage" else ""
        return (f"negative_prompt is not read by {label} models at cfg 1{how}; empty it for them: "
                f"negative_prompt = \"\" under [family.{family.name}], or set cfg above 1 there (each "
                "step then runs twice)")
    return None


def _prompt_problem(settings, family: Family) -> str | None:
    """How the recipe asks its prompt or size to be read that the model cannot."""
    label = family.label
    if settings.clip_skip > 1 and "CLIP" not in family.reads:
        return f"clip_skip is for CLIP-conditioned models; {label} reads {family.reads} and takes none"
    if family.max_pixels and (settings.working_size or 0) ** 2 > family.max_pixels:
        side = int(family.max_pixels ** 0.5)
        return (f"working_size {settings.working_size} is more than {label} models work at here "
                f"(diffusers' pipeline scales anything above {side}² pixels down itself); set "
                f"working_size to {side} or less")
    from photobatch.recipes.prompt_syntax import uses_syntax

    for field in ("prompt", "negative_prompt"):
        if uses_syntax(getattr(settings, field) or ""):
            return (f"{field} uses A1111's weight syntax ((word:1.2), [word], BREAK), which is read "
                    f"for SD 1.x, 2.x and SDXL models; {label} reads the prompt as written: "
                    "write it without them")
    return None


def _sampler_problem(settings, family: Family) -> str | None:
    label = family.label
    if settings.sampler not in FLOW_SAMPLERS:
        return (f"sampler {settings.sampler!r} does not run on {label} models (flow matching: "
                f"diffusers runs them with {', '.join(map(repr, FLOW_SAMPLERS))}); set sampler = "
                "\"Euler\", the models' own")
    if settings.schedule not in FLOW_SCHEDULES:
        return (f"schedule {settings.schedule!r} does not apply to {label} models; use one of "
                f"{', '.join(map(repr, FLOW_SCHEDULES))}")
    if settings.sampler == "LCM" and settings.schedule != "Automatic":
        return f"schedule {settings.schedule!r} does not go with sampler 'LCM' on {label} models"
    return None


def make_flow_scheduler(name: str, base_config, schedule: str = "Automatic"):
    """The flow-matching scheduler for sampler ``name`` from the model's own scheduler config
    (its shift and dynamic shifting kept)."""
    import diffusers

    class_name, overrides = FLOW_SAMPLERS[name]
    return getattr(diffusers, class_name).from_config(base_config, **overrides,
                                                      **FLOW_SCHEDULES[schedule])


def guidance_arguments(family: Family, cfg: float) -> dict:
    """What a ``family`` pipeline is given for a recipe's ``cfg``: ``guidance_scale``, the same
    number, except for Z-Image, whose pipelines count classifier-free guidance from 0, and
    Qwen-Image, whose pipelines call it ``true_cfg_scale``."""
    if family.name == "qwenimage":
        return {"true_cfg_scale": cfg, "guidance_scale": None}
    return {"guidance_scale": max(cfg - 1.0, 0.0) if family.name == "zimage" else cfg}


def encode_flow_prompt(pipe, family: Family, prompt: str, negative_prompt: str | None,
                       clip_skip: int, true_cfg: bool = False, variant: str | None = None) -> dict:
    """The conditioning of one image on a flow model: what the pipeline's ``__call__`` would
    compute from the prompts (FLUX.1: no negative, unless ``true_cfg``; SD 3.x: both, with
    A1111's clip skip on its CLIP encoders; Z-Image: both, as lists of one tensor each, whose
    lengths are the prompts' own; FLUX.2 [dev], ``variant`` "dev": no negative)."""
    import torch

    device = pipe._execution_device
    with torch.no_grad():
        if family.name == "qwenimage":
            # The negative is encoded whatever the cfg (" " for none: Qwen's own advice), and its
            # padding masks kept where the pipeline made any.
            embeds, mask = pipe.encode_prompt(prompt=prompt, device=device, num_images_per_prompt=1)
            negatives, negative_mask = pipe.encode_prompt(prompt=negative_prompt or " ", device=device,
                                                          num_images_per_prompt=1)
            tensors = {"prompt_embeds": embeds, "prompt_embeds_mask": mask,
                       "negative_prompt_embeds": negatives, "negative_prompt_embeds_mask": negative_mask}
            return {name: tensor for name, tensor in tensors.items() if tensor is not None}
        if family.name == "flux2":
            embeds, _ = pipe.encode_prompt(prompt=prompt, device=device, num_images_per_prompt=1)
            if variant == "dev":
                # Guidance-distilled: no negative is read, so none goes through Mistral.
                return {"prompt_embeds": embeds}
            # Its pipeline always encodes "" as the negative; the recipe's is encoded here.
            negatives, _ = pipe.encode_prompt(prompt=negative_prompt or "", device=device,
                                              num_images_per_prompt=1)
            return {"prompt_embeds": embeds, "negative_prompt_embeds": negatives}
        if family.name == "zimage":
            # The negative is encoded whatever the cfg: one short call a shoot, and the
            # conditioning then serves a recipe at any cfg.
            embeds, negatives = pipe.encode_prompt(prompt=prompt, device=device,
                                                   do_classifier_free_guidance=True,
                                                   negative_prompt=negative_prompt or "")
            return {"prompt_embeds": embeds, "negative_prompt_embeds": negatives}
        if family.name == "flux":
            embeds, pooled, _text_ids = pipe.encode_prompt(prompt=prompt, prompt_2=None,
                                                           device=device, num_images_per_prompt=1)
            tensors = {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}
            if true_cfg:
                negatives, negative_pooled, _ = pipe.encode_prompt(
                    prompt=negative_prompt or "", prompt_2=None, device=device, num_images_per_prompt=1)
                tensors.update(negative_prompt_embeds=negatives,
                               negative_pooled_prompt_embeds=negative_pooled)
            return tensors
        # diffusers counts skipped layers from 0 (None: the last layer); A1111 from 1.
        embeds, negatives, pooled, negative_pooled = pipe.encode_prompt(
            prompt=prompt, prompt_2=None, prompt_3=None, device=device, num_images_per_prompt=1,
            do_classifier_free_guidance=True, negative_prompt=negative_prompt or "",
            clip_skip=clip_skip - 1 if clip_skip > 1 else None)
    return {"prompt_embeds": embeds, "negative_prompt_embeds": negatives,
            "pooled_prompt_embeds": pooled, "negative_pooled_prompt_embeds": negative_pooled}
