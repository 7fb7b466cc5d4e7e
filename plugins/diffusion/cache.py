"""Loaded models, cached by (model, dtype, device) and shared across tasks and recipes.

One set of weights per model: the img2img, inpainting and ControlNet pipelines of a model are
built from the loaded one with ``from_pipe``, which shares its components (no second copy in
memory). Recipes that name the same model therefore share everything.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field

from photobatch.plugins.diffusion.families import ModelInfo, pag_problem
from photobatch.plugins.diffusion.host_memory import keep_freed_memory
from photobatch.plugins.diffusion.loading import load_pipeline
from photobatch.plugins.diffusion.sources import ModelError, ModelRef, model_hash, resolve_model
from photobatch.plugins.diffusion.union import shared_union
from photobatch.plugins.reference_photos import ReferenceReader

log = logging.getLogger(__name__)

COMPILE_ENV = "PHOTOBATCH_COMPILE"

# A model that failed to load fails the next photos at once for this long, with the same
# reason: a shoot of 300 photos does not load gigabytes (or ask the hub) 300 times to fail
# 300 times. After it, the next photo tries again: the user may have mended the model.
FAILED_LOAD_SECONDS = 60.0


@dataclass
class LoadedModel:
    """A loaded model: its base pipeline, identity, family and per-model runtime state."""

    pipe: object
    ref: ModelRef
    info: ModelInfo
    device: str
    dtype: object
    hash: str | None
    memory_level: int = 0
    batch_limit: int | None = None  # images a call may take, learnt from running out (memory.py)
    task_pipes: dict = field(default_factory=dict)
    # Adapter state lives on the shared UNet, so it is tracked per model, not per pipeline.
    loras: dict = field(default_factory=dict)  # adapter name -> source
    embeddings: dict = field(default_factory=dict)  # token -> embedding file
    ip_adapter: tuple | None = None  # (key, id of the pipeline it was loaded through)
    conditioning: dict = field(default_factory=dict)  # prompt key -> embeddings (prompts.py)
    priors: dict = field(default_factory=dict)  # FLUX.1 Redux model -> its prior (redux.py)
    lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def precision(self) -> str:
        """The short name of the dtype the model computes in ("fp32", "bf16", "fp16")."""
        from photobatch.plugins.diffusion.device import precision_name

        return precision_name(self.dtype)

    @property
    def base(self) -> str | None:
        """The model_config a single file loaded with (its text encoders, VAE and scheduler's
        source), or None."""
        return self.ref.config


class PipelineCache:
    """Load each model once per (model, dtype, device); hand out task pipelines built with from_pipe."""

    def __init__(self, device: str | None = None, compile_unet: bool | None = None,
                 precision: str | None = None):
        self._requested_device = device
        self._requested_precision = precision
        self._compile = (os.environ.get(COMPILE_ENV, "") in ("1", "true", "yes")
                         if compile_unet is None else compile_unet)
        self._models: dict[tuple, LoadedModel] = {}
        self._controlnets: dict[tuple, object] = {}
        self._helpers: dict[tuple, object] = {}  # depth estimators, captioners
        self._vaes: dict[tuple, object] = {}
        self._failed: dict[tuple, tuple[float, str]] = {}  # key -> (when, why)
        self._lock = threading.Lock()
        # Reads reference photos (style-match, Redux) as photos are read, once per file.
        self.read_reference = ReferenceReader()

    @property
    def device(self) -> str:
        """The device models load on: the one asked for, else PHOTOBATCH_DEVICE, else the best."""
        from photobatch.plugins.diffusion.device import pick_device

        return pick_device(self._requested_device)

    def use_readers(self, readers) -> None:
        """Read reference photos with ``readers`` (the app's; None: the built-in ones)."""
        self.read_reference = ReferenceReader(readers)

    def use_device(self, device: str | None) -> None:
        """Load models on ``device`` ("auto", "cpu", "cuda", "cuda:1", "mps"; None: auto) from now on."""
        self._requested_device = device

    @property
    def dtype(self):
        """The dtype models load in on this device: the precision asked for, else the best."""
        from photobatch.plugins.diffusion.device import pick_dtype

        return pick_dtype(self.device, self._requested_precision)

    def use_precision(self, precision: str | None) -> None:
        """Load models in ``precision`` ("auto", "fp32", "bf16", "fp16"; None: auto) from now on."""
        from photobatch.plugins.diffusion.device import precision_problem

        problem = precision_problem(precision) if precision is not None else None
        if problem:
            raise ValueError(f"precision {problem}")
        self._requested_precision = precision

    def get(self, model: str, config: str | None = None) -> LoadedModel:
        """The loaded model for ``model`` (loading it on first use)."""
        from photobatch.plugins.diffusion.device import device_problem, pick_device, pick_dtype
        from photobatch.plugins.diffusion.memory import free_vram_gib, initial_level

        ref = resolve_model(model, config=config)
        device = pick_device(self._requested_device)
        problem = device_problem(device)
        if problem:
            raise ModelError(problem)
        dtype = pick_dtype(device, self._requested_precision)
        key = (ref.model_id, ref.config, str(dtype), device)
        with self._lock:
            if key not in self._models:
                failed = self._failed.get(key)
                if failed and time.monotonic() - failed[0] < FAILED_LOAD_SECONDS:
                    raise ModelError(failed[1])
                # The device or precision changed (a config reload): free the model's old copy.
                for old in [k for k in self._models if k[:2] == key[:2]]:
                    log.info("unloading %s (%s on %s)", ref.model_id, old[2], old[3])
                    del self._models[old]
                # Before the first load, so the weights' own buffers come from the kept heap too.
                keep_freed_memory()
                # Measured before the weights land: a family's need counts its weights, so the
                # memory left after loading would ask for offload where none is needed (SDXL
                # on a 12 GB card).
                free_before = free_vram_gib(device)
                try:
                    pipe, info = load_pipeline(ref, device, dtype)
                except ModelError as exc:
                    self._failed[key] = (time.monotonic(), str(exc))
                    raise
                self._failed.pop(key, None)
                if self._compile:
                    # The denoiser: a UNet, or the transformer of a flow model (SD 3.x, FLUX.1).
                    part = "transformer" if info.family.flow else "unet"
                    setattr(pipe, part, _compile(getattr(pipe, part)))
                loaded = LoadedModel(pipe, ref, info, device, dtype, model_hash(ref))
                loaded.memory_level = initial_level(device, info, free_before)
                if loaded.memory_level:
                    from photobatch.plugins.diffusion.memory import apply_level

                    apply_level(loaded.pipe, loaded.memory_level, device)
                self._models[key] = loaded
            return self._models[key]

    def task_pipe(self, loaded: LoadedModel, task: str,
                  controlnet_model: str | tuple[str, ...] | None = None, vae: str | None = None,
                  pag_layers: tuple[str, ...] | None = None):
        """The pipeline for ``task`` ("img2img" or "inpaint"), optionally with a ControlNet (or
        a tuple of them, applied together), a VAE of its own, and perturbed-attention guidance
        on ``pag_layers`` (every other component is the loaded model's)."""
        import diffusers

        key = (task, controlnet_model, vae) + ((pag_layers,) if pag_layers else ())
        if key in loaded.task_pipes:
            return loaded.task_pipes[key]
        kwargs = {}
        # The class to make where auto.from_pipe would pick a wrong one: SDXL's union pipelines
        # (it picks the plain ControlNet ones, which cannot run a Union model) and Kontext's
        # inpainting pipeline (it knows none).
        pipe_cls = union = None
        if controlnet_model:
            names = controlnet_model if isinstance(controlnet_model, tuple) else (controlnet_model,)
            nets = [self.controlnet(model, loaded) for model in names]
            union = shared_union(nets) if loaded.info.family.name != "flux" else None
            if union is not None:
                kwargs["controlnet"] = union
                pipe_cls = getattr(diffusers, "StableDiffusionXLControlNetUnion"
                                    + ("InpaintPipeline" if task == "inpaint" else "Img2ImgPipeline"))
            else:
                kwargs["controlnet"] = nets if isinstance(controlnet_model, tuple) else nets[0]
        if vae:
            kwargs["vae"] = self.vae(vae, loaded)
        if pag_layers:
            kwargs.update(enable_pag=True, pag_applied_layers=list(pag_layers))
        auto = diffusers.AutoPipelineForInpainting if task == "inpaint" else diffusers.AutoPipelineForImage2Image
        if loaded.info.reads_photo:
            # Both tasks: its inpainting pipeline is the one that takes a strength.
            pipe_cls = _strength_class(loaded.info)
        if not kwargs and (_is_task_class(loaded.pipe, task) or loaded.info.variant == "fill"):
            # (FLUX.1 Fill's one pipeline does both: img2img is everything masked.)
            pipe = loaded.pipe
        else:
            problem = pag_problem(loaded.info.family, task, bool(controlnet_model)) if pag_layers else None
            if union is not None and pag_layers:
                problem = "pag does not go with a Union ControlNet (diffusers has no such pipeline)"
            if problem:
                raise ValueError(problem)
            if pipe_cls is not None:
                # A pipeline class's own from_pipe casts every component, the loaded model's
                # shared ones included, to float32 unless told the dtype (the AutoPipelines'
                # does not): a half-precision model would silently double in memory.
                kwargs["dtype"] = loaded.dtype
            if pipe_cls is not None and _quantised(loaded.pipe):
                # from_pipe casts every component to the dtype, which diffusers refuses for a
                # quantised (GGUF) transformer: the same components, put together as they are.
                pipe = _from_components(pipe_cls, loaded.pipe, kwargs)
            else:
                pipe = (pipe_cls or auto).from_pipe(loaded.pipe, **kwargs)
            if hasattr(pipe, "safety_checker"):
                pipe.safety_checker = None
            pipe.set_progress_bar_config(disable=True)
        loaded.task_pipes[key] = pipe
        return pipe

    def vae(self, source: str, loaded: LoadedModel):
        """A recipe's own VAE, loaded once per (source, dtype, device); a single file takes its
        architecture from ``loaded``'s own VAE config."""
        from photobatch.plugins.diffusion.vae import load_vae

        key = (source, str(loaded.dtype), loaded.device)
        with self._lock:
            if key not in self._vaes:
                config = loaded.ref.config or (loaded.ref.location if loaded.ref.kind != "single-file"
                                               else None)
                self._vaes[key] = load_vae(source, loaded.device, loaded.dtype, config)
            return self._vaes[key]

    def depth_estimator(self, source: str, loaded: LoadedModel):
        """A depth estimator for depth ControlNets, loaded once per (source, device)."""
        from photobatch.plugins.diffusion.depth import load_depth_estimator

        return self._helper(load_depth_estimator, source, loaded.device)

    def captioner(self, source: str, device: str):
        """A captioning model for ``{caption}`` in prompts, loaded once per (source, device)."""
        from photobatch.plugins.diffusion.captions import load_captioner

        return self._helper(load_captioner, source, device)

    def _helper(self, load, source: str, device: str):
        key = (load.__name__, source, device)
        with self._lock:
            if key not in self._helpers:
                self._helpers[key] = load(source, device)
            return self._helpers[key]

    def controlnet(self, model: str, loaded: LoadedModel):
        """A ControlNet model for ``loaded``'s family, loaded once per (model, dtype, device)."""
        from photobatch.plugins.diffusion.controlnet import load_controlnet

        family = loaded.info.family.name
        key = (model, str(loaded.dtype), loaded.device, family)
        with self._lock:
            if key not in self._controlnets:
                self._controlnets[key] = load_controlnet(model, loaded.device, loaded.dtype, family)
            return self._controlnets[key]


def _is_task_class(pipe, task: str) -> bool:
    name = type(pipe).__name__
    if "ControlNet" in name:
        return False
    return ("Inpaint" in name) == (task == "inpaint") and ("Img2Img" in name or "Inpaint" in name)


def _compile(model):
    # Opt-in: the first call per input shape compiles for minutes; it pays on long GPU batches.
    import torch

    log.info("compiling the denoiser with torch.compile (first images will be slow)")
    return torch.compile(model, mode="reduce-overhead", fullgraph=False)


def _strength_class(info):
    """The strength-taking pipeline of a model that reads the photo itself: its inpainting one
    (FLUX.1 Kontext's, klein's, Qwen-Image-Edit's); Qwen-Image-Edit Plus and FLUX.2 [dev] run
    through the Edit and klein ones conditioned as their own pipelines condition them."""
    import diffusers

    if info.variant == "edit-plus":
        from photobatch.plugins.diffusion.qwen_edit import plus_inpaint_pipeline_class

        return plus_inpaint_pipeline_class()
    if info.variant == "dev":
        from photobatch.plugins.diffusion.flux2_dev import dev_inpaint_pipeline_class

        return dev_inpaint_pipeline_class()
    if info.kontext:
        return diffusers.FluxKontextInpaintPipeline
    if info.variant == "edit":
        return diffusers.QwenImageEditInpaintPipeline
    return getattr(diffusers, info.family.inpaint_class)


def _quantised(pipe) -> bool:
    """Whether a pipeline's transformer or UNet keeps its weights quantised (a GGUF file's)."""
    model = getattr(pipe, "transformer", None) or getattr(pipe, "unet", None)
    return bool(getattr(model, "is_quantized", False))


def _from_components(pipe_cls, pipe, overrides: dict):
    """A ``pipe_cls`` pipeline made of ``pipe``'s components (``overrides`` replacing some) and
    its configuration (FLUX.2 [klein]'s is_distilled), none of them cast or copied."""
    import inspect

    accepted = inspect.signature(pipe_cls.__init__).parameters
    parts = {**{k: v for k, v in pipe.config.items() if k in accepted and not k.startswith("_")
                and not isinstance(v, (list, tuple))},
             **{k: v for k, v in pipe.components.items() if k in accepted}, **overrides}
    return pipe_cls(**{k: v for k, v in parts.items() if k in accepted})
