"""One diffusers call: the right task pipeline, sampler, adapters and memory settings, then run.

Both runners (img2img and inpaint) come through here, for one image or a batch of same-size
images, so seeds, samplers, LoRAs, IP-Adapters, ControlNets, VAE tiling and the OOM retry
behave the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from PIL import Image

from photobatch.plugins.diffusion.adapters import apply_ip_adapter, apply_loras, load_embeddings
from photobatch.plugins.diffusion.controlnet import control_arguments
from photobatch.plugins.diffusion.flow import (
    flow_problem,
    guidance_arguments,
    make_flow_scheduler,
    true_cfg_problem,
)
from photobatch.plugins.diffusion.memory import call_with_oom_retry, set_vae_tiling
from photobatch.plugins.diffusion.native_reference import (
    native_reference_count,
    native_reference_problem,
)
from photobatch.plugins.diffusion.prompts import prompt_arguments
from photobatch.plugins.diffusion.refiner import prepare_refiner
from photobatch.plugins.diffusion.samplers import TCD_GAMMA, inference_steps, make_scheduler
from photobatch.plugins.diffusion.sources import ModelError
from photobatch.plugins.diffusion.union import union_arguments


@dataclass(frozen=True)
class RunOutput:
    """What a run produced, and what ``restore_full_resolution`` needs to finish it.

    ``image`` is the model's output at working size (or already at the region's full size for
    tiled runs); ``model_input`` what the model was given; ``region`` the box of the source the
    model saw (None: all of it); ``mask`` the full-size feathered paste-back mask (inpainting).
    """

    image: Image.Image
    model_id: str
    model_hash: str | None
    device: str
    working_size: tuple[int, int]
    model_input: Image.Image | None = None
    region: tuple[int, int, int, int] | None = None
    mask: Image.Image | None = None
    precision: str | None = None  # "fp32", "bf16", "fp16": what the model computed in
    adapters_hash: str | None = None  # the LoRA/VAE/... files read (sources.adapters_hash)
    prompt: str | None = None  # the prompt as it ran, when a caption filled in its {caption}
    family: str | None = None  # the model's family ("sd1", "flux", ...): which table applied
    # The base a single file ran with (its model_config: a folder or hub id), whose text
    # encoders and VAE made the picture with the file's weights; None for other models.
    model_config: str | None = None


def generate(cache, loaded, settings, images, seeds, masks=None, controls=None) -> list[Image.Image]:
    """Run one pipeline call over ``images`` (all one size) with one seed each.

    ``masks`` (binary, one per image) selects inpainting; ``controls`` are the ControlNet's
    source images (the control image is computed from each).
    """
    import torch

    if len(images) != len(seeds):
        raise ValueError(f"{len(images)} images need {len(images)} seeds, got {len(seeds)}")
    width, height = images[0].size
    if any(img.size != (width, height) for img in images):
        raise ValueError("a batch needs images of one size; got " + ", ".join(str(i.size) for i in images))
    family = loaded.info.family
    kontext = loaded.info.kontext
    if problem := native_reference_problem(settings, loaded.info):
        raise ValueError(problem)
    if family.flow and (problem := flow_problem(settings, family, loaded.info.variant,
                                                distilled=loaded.info.distilled)):
        raise ValueError(problem)
    if not family.flow and settings.true_cfg > 1:
        raise ValueError(true_cfg_problem(family))
    units = settings.controlnets
    one_each = family.reference_input and native_reference_count(settings) == len(images)
    if (len(units) > 1 or one_each) and len(images) > 1:
        # diffusers takes one control image per ControlNet, not one per image, when there are
        # several ControlNets; and klein's pipeline reads as many reference photos as photos in
        # its call as one for each: each image gets its own call. (Qwen-Image-Edit Plus's
        # references go to every photo of its call.)
        return [out for i in range(len(images))
                for out in generate(cache, loaded, settings, [images[i]], [seeds[i]],
                                    None if masks is None else [masks[i]],
                                    None if controls is None else [controls[i]])]
    # FLUX.1 Kontext and FLUX.2 [klein] run through their inpainting pipelines, the ones that
    # take a strength: with everything masked that is img2img that also reads the photo itself.
    task = "inpaint" if masks is not None or loaded.info.inpainting or loaded.info.reads_photo else "img2img"
    if task == "inpaint" and masks is None:
        # An inpainting model asked for img2img: everything is "masked" (what A1111 does).
        masks = [Image.new("L", (width, height), 255)] * len(images)
    # Checked first: a refiner that cannot take over fails the file before anything loads.
    refine = (prepare_refiner(cache, loaded, settings, task, len(images), (width, height), masks)
              if settings.refiner is not None else None)
    cn_models = tuple(settings.resolve_path(unit.model) for unit in units)
    pag = settings.pag
    pipe = cache.task_pipe(loaded, task, (cn_models[0] if len(cn_models) == 1 else cn_models) or None,
                           settings.resolve_path(settings.vae) if settings.vae else None,
                           pag.layers if pag is not None else None)
    n = len(images)
    kwargs = dict(
        image=list(images),
        strength=settings.strength,
        num_inference_steps=inference_steps(settings.steps, settings.strength, settings.exact_steps),
        # Floats, so that NaNs can be seen (as pictures they are black); pictures() then
        # makes exactly the images output_type="pil" would.
        output_type="np",
    )
    kwargs.update(guidance_arguments(family, settings.cfg))
    if task == "inpaint":
        kwargs.update(mask_image=list(masks))
    if task == "inpaint" or family.flow:
        # These pipelines make their native square unless told the image's size.
        kwargs.update(height=height, width=width)
    if settings.true_cfg > 1:
        kwargs.update(true_cfg_scale=settings.true_cfg)
    if settings.sampler == "TCD":
        kwargs.update(eta=TCD_GAMMA)
    if kontext:
        # Kontext's pipeline otherwise resizes to about a megapixel, at one of its training
        # shapes: the working size is ours to choose (and the photo's shape to keep).
        kwargs.update(max_area=width * height, _auto_resize=False)
    if pag is not None:
        kwargs.update(pag_scale=pag.scale, pag_adaptive_scale=pag.adaptive_scale)
    if refine is not None:
        # The base stops where the refiner takes over and hands it its latents.
        kwargs.update(denoising_end=refine.start, output_type="latent")
    if units:
        sources = [src.resize((width, height)) for src in (controls if controls is not None else images)]
        kwargs.update(control_arguments(units, sources, lambda source: cache.depth_estimator(
            settings.resolve_path(source), loaded)))
        kwargs.update(union_arguments(pipe.controlnet, units, family.name, n, kwargs["control_image"]))
    with loaded.lock:
        # A fresh scheduler per call (attempt() below): schedulers keep per-run state and
        # pipelines are shared.
        previous = pipe.scheduler
        processors = None
        try:
            loras = [replace(spec, path=settings.resolve_path(spec.path)) for spec in settings.loras]
            apply_loras(pipe, loaded, loras)
            load_embeddings(pipe, loaded, [replace(e, path=settings.resolve_path(e.path))
                                           for e in settings.embeddings])
            # Encoded here (or found encoded), with this recipe's LoRAs and embeddings in place.
            kwargs.update(prompt_arguments(pipe, loaded, settings, n))
            ip = settings.ip_adapter
            if ip is not None:
                reference = (tuple(settings.resolve_path(r) for r in ip.reference)
                             if isinstance(ip.reference, tuple)
                             else settings.resolve_path(ip.reference) if ip.reference else "")
                ip = replace(ip, model=ip.model if ip.native else settings.resolve_path(ip.model),
                             reference=reference)
            kwargs.update(apply_ip_adapter(pipe, loaded, ip, kwargs, read=cache.read_reference))
            set_vae_tiling(pipe, width, height, loaded.memory_level)
            if settings.freeu is not None:
                # On the shared UNet: taken off again below, whatever happens.
                pipe.enable_freeu(**settings.freeu.values(loaded.info.family.name))
            if pag is not None:
                # PAG swaps the shared UNet's attention processors during a call and puts back
                # what it found; a call that failed half-way (out of memory, retried) would leave
                # its own. These (the IP-Adapter's, when loaded) are put back below.
                processors = pipe.unet.attn_processors

            def attempt():
                # Fresh generators and sampler for every attempt: a call that ran out of memory
                # has drawn noise and stepped the sampler already, and the retried file must
                # get its seed's picture. CPU generators: a seed gives the same noise on every
                # device.
                pipe.scheduler = (make_flow_scheduler(settings.sampler, previous.config,
                                                      settings.schedule) if family.flow else
                                  make_scheduler(settings.sampler, previous.config, seeds,
                                                 settings.schedule))
                generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
                out = pipe(**kwargs, generator=generators).images
                if refine is not None:
                    # The same generators go on drawing, as A1111's sampler goes on.
                    out = refine(out, generators, seeds, kwargs["num_inference_steps"])
                return out

            # Several images out of memory: the caller splits them (memory.run_in_batches)
            # before any memory level is given up.
            pipes = [pipe] + ([refine.pipe] if refine is not None else [])
            arrays = call_with_oom_retry(attempt, loaded, pipes) if n == 1 else attempt()
        finally:
            pipe.scheduler = previous
            if settings.freeu is not None:
                pipe.disable_freeu()
            if processors is not None:
                pipe.unet.set_attn_processor(processors)
    out = pictures(pipe, arrays, loaded.precision)
    if loaded.info.edit and out[0].size != (width, height):
        # Qwen-Image-Edit's pipeline works at about a megapixel whatever it is given (a tile
        # or a crop smaller than that): its picture goes back to the size it was given.
        out = [image.resize((width, height), Image.Resampling.LANCZOS) for image in out]
    return out


def pictures(pipe, arrays, precision: str) -> list[Image.Image]:
    """The pipeline's float output (n, h, w, 3) in [0, 1] as pictures, refusing NaN or infinite
    values: half precision overflowing in a model (SD 2.x and SDXL VAEs in fp16 are known to)
    would otherwise be written out as a black photo and recorded as done."""
    import numpy as np

    if not np.isfinite(arrays).all():
        if precision == "fp32":
            raise ModelError("the model produced invalid pixels (NaN) even in fp32: its weights may "
                             "be damaged")
        raise ModelError(f"the model produced invalid pixels (NaN) computing in {precision}, too "
                         "little range for it; set precision = \"fp32\" under [defaults] in the "
                         "config (A1111's --no-half)")
    return pipe.image_processor.numpy_to_pil(arrays)
