"""Load a diffusers pipeline from a resolved model reference: folder, single file or hub id."""

from __future__ import annotations

import warnings
from pathlib import Path

from photobatch.plugins.diffusion.families import (
    ModelInfo,
    family_of_pipeline,
    family_of_single_file,
    folder_class_name,
    unsupported_pipeline,
)
from photobatch.plugins.diffusion.quantized import quantized_folder_problem
from photobatch.plugins.diffusion.sources import (  # re-exported: the session imports them here
    ModelError,
    ModelRef,
    cache_only_reason,
    first_line,
    incomplete_folder,
    model_hash,
    names_a_path,
    resolve_model,
)

# A real CLIP BPE vocabulary has ~49k tokens, T5's 32k; every byte-level BPE has at least 256 +
# specials.
MIN_TOKENIZER_VOCAB = 300


def native_size(pipe) -> int:
    """The family's native working side in pixels (SD 1.x 512, SD 2.x 768, SDXL 1024)."""
    return family_of_pipeline(pipe).native


def check_tokenizer(pipe, model_id: str) -> None:
    """Refuse a tokenizer with a toy vocabulary (transformers' silent offline fallback)."""
    for attr in ("tokenizer", "tokenizer_2", "tokenizer_3"):
        tok = getattr(pipe, attr, None)
        if tok is not None and len(tok) < MIN_TOKENIZER_VOCAB:
            raise ModelError(
                f"model {model_id}: its {attr} has only {len(tok)} tokens, so it was not really "
                "loaded (an offline download that silently failed?); re-download the model"
            )


def load_pipeline(ref: ModelRef, device: str, dtype) -> tuple[object, ModelInfo]:
    """Load ``ref`` onto ``device`` as an img2img pipeline (an inpainting one for 9-channel UNets)."""
    import diffusers
    import transformers

    # Loading bars are noise in a batch tool's output and in the daemon's log.
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    # diffusers 0.42 still passes this argument to huggingface_hub, which warns on every hub
    # load; it is the libraries' affair, not the user's.
    warnings.filterwarnings("ignore", message="The `local_dir_use_symlinks` argument is deprecated",
                            category=UserWarning)
    cache_only = cache_only_reason() if ref.kind == "hub" else None
    try:
        if ref.kind == "single-file":
            pipe = _load_single_file(ref, dtype)
        else:
            # Safety checkers judge generated content; ours are the photographer's own photos.
            # SD 1.x/2.x folders ship one (a CLIP ViT-L/14 vision model, 304M parameters): it is
            # not loaded at all rather than loaded and dropped. Pipelines without one ignore this.
            kwargs = {"dtype": dtype, "safety_checker": None}
            if ref.kind == "hub":
                # Without an answer from the hub a cached model still loads, from the cache.
                kwargs["local_files_only"] = cache_only is not None
            pipe = _auto_pipeline(ref.location, kwargs)
    except ModelError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, ImportError) as exc:
        # A folder saved quantized needs its quantizer's package, and bitsandbytes a GPU:
        # diffusers says "No GPU found" or names a missing package's metadata.
        folder = _local_folder(ref.location) if ref.kind != "single-file" else None
        problem = folder and quantized_folder_problem(folder, device, f"model {ref.model_id}")
        if problem:
            raise ModelError(problem) from exc
        if isinstance(exc, ImportError):
            raise ModelError(f"model {ref.model_id} could not be loaded: it needs a package "
                             f"that is not installed ({first_line(exc)})") from exc
        if cache_only:
            raise ModelError(
                f"model {ref.location} is not in the Hugging Face cache and {cache_only}: "
                "download it once with network access, or pass a local folder"
            ) from None
        # diffusers names the file it missed, not the part of the model that lacks it.
        problem = incomplete_folder(ref.location) if ref.kind == "folder" else None
        if problem:
            raise ModelError(problem) from exc
        raise ModelError(f"model {ref.model_id} could not be loaded: {first_line(exc)}") from exc
    problem = unsupported_pipeline(type(pipe).__name__.replace("Img2Img", "").replace("Inpaint", ""),
                                   f"model {ref.model_id}")
    if problem:
        raise ModelError(problem)
    if type(pipe).__name__.startswith("LatentConsistencyModel"):
        # An LCM-distilled SD model: diffusers' LCM pipelines take no negative prompt and no
        # prompt embeddings of ours; SD's img2img pipeline runs the same UNet (it passes the
        # guidance embedding such UNets read) with every feature photobatch has.
        # (Its from_pipe casts to float32 unless told the dtype.)
        pipe = diffusers.StableDiffusionImg2ImgPipeline.from_pipe(pipe, dtype=dtype)
    check_tokenizer(pipe, ref.model_id)
    info = family_of_pipeline(pipe)
    if info.inpainting and not info.family.flow and "Inpaint" not in type(pipe).__name__:
        # A 9-channel UNet only works in an inpainting pipeline; share the loaded components.
        pipe = diffusers.AutoPipelineForInpainting.from_pipe(pipe)
    # Whatever a pipeline still brought (single files and from_pipe bring none), it never runs.
    if hasattr(pipe, "safety_checker"):
        pipe.safety_checker = None
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device), info


def _auto_pipeline(location: str, kwargs: dict):
    """The img2img pipeline for a folder or hub id (FLUX.1 Fill: its own, which diffusers'
    AutoPipelines do not know)."""
    import diffusers

    folder = _local_folder(location)
    class_name = (folder_class_name(folder) or "") if folder else ""
    tokenizer = None
    if class_name.startswith("QwenImageEdit"):
        from photobatch.plugins.diffusion.qwen_edit import load_processor

        # Its own processor would need torchvision; the same without its video part reads photos.
        kwargs = {**kwargs, "processor": load_processor(folder)}
    elif class_name == "Flux2Pipeline":
        from photobatch.plugins.diffusion.flux2_dev import load_tokenizer

        # FLUX.2 [dev]'s tokenizer is saved as Pixtral's processor, which would need torchvision
        # (and diffusers accepts no other class in its place): the pipeline only tokenizes text
        # with it, so its tokenizer alone is put in once the rest has loaded.
        tokenizer = load_tokenizer(folder)
        kwargs = {**kwargs, "tokenizer": None}
    try:
        pipe = diffusers.AutoPipelineForImage2Image.from_pretrained(location, **kwargs)
    except ValueError as exc:
        if "FluxFillPipeline" not in str(exc):
            raise
        kwargs = {k: v for k, v in kwargs.items() if k != "safety_checker"}
        return diffusers.FluxFillPipeline.from_pretrained(location, **kwargs)
    if tokenizer is not None:
        pipe.register_modules(tokenizer=tokenizer)
    return pipe


def _local_folder(location: str) -> str | None:
    """The folder a model's files are in: a folder itself, or a hub id's cached copy (None
    when it is not cached)."""
    from photobatch.plugins.diffusion.sources import cached_snapshot

    return location if Path(location).is_dir() else cached_snapshot(location)


def _load_single_file(ref: ModelRef, dtype):
    import diffusers

    path = Path(ref.location)
    if path.suffix.lower() in (".safetensors", ".gguf"):
        info = family_of_single_file(path)
    else:
        info = _family_of_pickle(path)
    problem = scaled_file_problem(str(path), info) if path.suffix.lower() == ".safetensors" else None
    if problem:
        raise ModelError(problem)
    if info.family.flow:
        return _load_flow_single_file(ref, info, dtype)
    if path.suffix.lower() == ".gguf":
        return _load_unet_gguf(ref, info, dtype)
    cls = getattr(diffusers, info.family.inpaint_class if info.inpainting else info.family.img2img_class)
    kwargs = {"dtype": dtype}
    if ref.config:
        kwargs["config"] = ref.config
    # Its configs come from the hub unless model_config is a local folder.
    cache_only = None if ref.config and Path(ref.config).is_dir() else cache_only_reason()
    if cache_only:
        if not ref.config:
            raise ModelError(
                f"model {path.name}: a single-file checkpoint needs its configs; {cache_only}, "
                "so give a local diffusers folder of the same family as model_config (or "
                "PHOTOBATCH_MODEL_CONFIG)"
            )
        kwargs["local_files_only"] = True
    return cls.from_single_file(str(path), **kwargs)


def needs_base(ref: ModelRef, info: ModelInfo) -> bool:
    """Whether a single file holds its model's transformer or UNet alone, the rest of the
    pipeline read from a base model (model_config): a flow model's file, or any GGUF."""
    return info.family.flow or ref.location.lower().endswith(".gguf")


def flow_single_file_problem(ref: ModelRef, info: ModelInfo) -> str | None:
    """Why a file holding a transformer or UNet alone (a FLUX.1 or SD 3.x single file, a GGUF)
    cannot load with ``ref``'s model_config (none given, or a local folder of another family),
    or None when it can (no weights are read)."""
    from photobatch.plugins.diffusion.families import family_of_folder

    name, label = Path(ref.location).name, info.family.label
    part = "transformer" if info.family.flow else "UNet"
    if not ref.config:
        return (f"model {name}: a {label} single file holds its {part}; give the {label} "
                "model it was made from as model_config (or PHOTOBATCH_MODEL_CONFIG): a diffusers "
                "folder or hub id, whose text encoders and VAE are read with it")
    base = family_of_folder(ref.config) if Path(ref.config).is_dir() else None
    if base is not None and base.family is not info.family:
        return (f"model {name} is a {label} {part}, but model_config {ref.config} is "
                f"{base.family.label}: give a {label} model")
    if base is not None and not info.family.flow and base.inpainting != info.inpainting:
        kind = "an inpainting" if info.inpainting else "a plain (4-channel)"
        return (f"model {name} is {kind} {label} UNet, but model_config {ref.config} is "
                f"{base.label}: give the model it was made from")
    if base is not None and info.family.name == "flux2" and (info.variant == "dev") != (base.variant == "dev"):
        # [dev]'s transformer has a guidance embedding and reads Mistral, klein's neither.
        return (f"model {name} is a {info.label} transformer, but model_config {ref.config} is "
                f"{base.label}: give the FLUX.2 model it was made from")
    if base is not None and (info.variant == "fill") != (base.variant == "fill"):
        # Fill's transformer reads 384 inputs a token, the others 64: one cannot load as the other.
        want = ("the FLUX.1 Fill model it was made from (black-forest-labs/FLUX.1-Fill-dev)"
                if info.variant == "fill" else "the FLUX.1 model it was made from")
        return (f"model {name} is a {info.label} transformer, but model_config {ref.config} is "
                f"{base.label}: give {want}")
    return None


def _base_kwargs(ref: ModelRef, info: ModelInfo, dtype) -> dict:
    """The loading arguments of a file that holds a transformer or UNet alone, its base model
    (model_config) checked first: the dtype, and the cache only for a hub base when the hub
    cannot be asked."""
    problem = flow_single_file_problem(ref, info)
    if problem:
        raise ModelError(problem)
    kwargs = {"dtype": dtype}
    if not Path(ref.config).is_dir() and cache_only_reason():
        kwargs["local_files_only"] = True
    return kwargs


def _load_flow_single_file(ref: ModelRef, info: ModelInfo, dtype):
    """A FLUX.1 or SD 3.x transformer from a single file (BFL's and Stability's layout, or
    ComfyUI's all-in-one), the rest of the pipeline (text encoders, tokenizers, VAE,
    scheduler) from the base model named by model_config: how fine-tunes of these models are
    shared, as the transformer alone."""
    import diffusers

    from photobatch.plugins.diffusion.flow import TRANSFORMER_CLASSES

    kwargs = _base_kwargs(ref, info, dtype)
    transformer_class = getattr(diffusers, TRANSFORMER_CLASSES[info.family.name])
    if ref.location.lower().endswith(".gguf"):
        # Its weights stay quantised and are made whole layer by layer as they compute, in the
        # precision the model runs in: the memory a GGUF file saves is kept.
        kwargs["quantization_config"] = diffusers.GGUFQuantizationConfig(compute_dtype=dtype)
    transformer = transformer_class.from_single_file(_flow_checkpoint(ref.location, info, dtype),
                                                     config=ref.config, subfolder="transformer",
                                                     **kwargs)
    # (FLUX.1 Fill's base folder gives its own pipeline, which the AutoPipelines do not know.)
    kwargs.pop("quantization_config", None)
    return _auto_pipeline(ref.config, {**kwargs, "transformer": transformer})


def _load_unet_gguf(ref: ModelRef, info: ModelInfo, dtype):
    """An SD 1.x/2.x/SDXL UNet as GGUF (ComfyUI-GGUF's files), its weights kept quantised and
    made whole layer by layer as they compute; the rest of the pipeline from model_config."""
    import diffusers
    from diffusers.models.model_loading_utils import load_gguf_checkpoint

    kwargs = _base_kwargs(ref, info, dtype)
    prefix = "model.diffusion_model."
    tensors = load_gguf_checkpoint(ref.location)
    # diffusers' UNet converter finds the UNet by its prefix, which such files often leave out.
    checkpoint = {(key if key.startswith(prefix) else prefix + key): value for key, value in tensors.items()}
    unet = diffusers.UNet2DConditionModel.from_single_file(
        checkpoint, config=ref.config, subfolder="unet",
        quantization_config=diffusers.GGUFQuantizationConfig(compute_dtype=dtype), **kwargs)
    return _auto_pipeline(ref.config, {**kwargs, "unet": unet})


def _flow_checkpoint(location: str, info: ModelInfo, dtype=None):
    """What a flow single file is read from: its path; its tensors with the scales multiplied
    back in for a scaled fp8 file (ComfyUI's), in ``dtype``; or for a FLUX.2 or Qwen-Image file
    in ComfyUI's naming its tensors without the "model.diffusion_model." prefix (diffusers reads
    BFL's names only for FLUX.2, its own only for Qwen-Image; its FLUX.1, SD 3.x and Z-Image
    converters take either)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from photobatch.plugins.diffusion.scaled_fp8 import dequantised, is_scaled

    prefix = "model.diffusion_model."
    if location.lower().endswith(".gguf"):
        return location  # diffusers reads GGUF files itself, quantised
    with safe_open(location, framework="pt") as fh:
        keys = list(fh.keys())
    tensors = None
    if is_scaled(keys):
        try:
            tensors = dequantised(location, dtype)
        except ValueError as exc:
            raise ModelError(str(exc)) from None
    if info.family.name not in ("flux2", "qwenimage") or not any(k.startswith(prefix) for k in keys):
        return location if tensors is None else tensors
    tensors = load_file(location) if tensors is None else tensors
    return {key.removeprefix(prefix): value for key, value in tensors.items()}


def scaled_file_problem(location: str, info: ModelInfo) -> str | None:
    """Why a single file's scaled weights (ComfyUI's fp8 scaled files) cannot be read, or None
    (header only): a flow transformer's are made whole again unless their form is unknown; an
    SD 1.x/2.x/SDXL checkpoint's are not (diffusers reads those files by path itself)."""
    from safetensors import safe_open

    from photobatch.plugins.diffusion.scaled_fp8 import is_scaled, scaled_problem

    if not location.lower().endswith(".safetensors"):
        return None
    if info.family.flow:
        return scaled_problem(location)
    with safe_open(location, framework="numpy") as fh:
        if is_scaled(fh.keys()):
            return (f"model {Path(location).name} is an fp8 scaled {info.family.label} checkpoint "
                    "(ComfyUI's), whose weights diffusers would read without their scales: use "
                    "the model's fp16 or bf16 file")
    return None


def _family_of_pickle(path: Path) -> ModelInfo:
    # Only reached when the user opted in to pickle files: loading one runs its code.
    import torch

    from photobatch.plugins.diffusion.families import SD1, SD2, SDXL

    data = torch.load(str(path), map_location="cpu", weights_only=False, mmap=True)
    state = data.get("state_dict", data)
    weight = state.get("model.diffusion_model.input_blocks.0.0.weight")
    inpainting = weight is not None and weight.shape[1] == 9
    if any(k.startswith("conditioner.embedders.1.") for k in state):
        family = SDXL
    elif "cond_stage_model.model.token_embedding.weight" in state:
        family = SD2
    else:
        family = SD1
    return ModelInfo(family, inpainting, family.native)


def load_component(label: str, source: str, device: str, *, from_file, from_folder, from_hub):
    """Load a model component (a ControlNet, a VAE) named by ``source``: a single .safetensors
    file, a folder, or a hub id, each through its loader (``from_hub(name, cache_only)``: only
    from the local cache when offline or the hub gives no answer); every failure becomes a
    ModelError that names the ``label`` and ``source``, and pickle files are refused."""
    path = Path(source).expanduser()
    cache_only = None
    try:
        if path.is_file():
            if path.suffix.lower() != ".safetensors":
                raise ModelError(f"{label} {path.name}: only .safetensors files are loaded "
                                 "(pickle files can run code)")
            part = from_file(path)
        elif path.is_dir():
            part = from_folder(path)
        elif names_a_path(source):
            raise ModelError(f"{label} {source} does not exist")
        else:
            cache_only = cache_only_reason()
            part = from_hub(source, cache_only is not None)
    except ModelError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        if cache_only:
            raise ModelError(f"{label} {source} is not in the Hugging Face cache and "
                             f"{cache_only}") from None
        raise ModelError(f"{label} {source} could not be loaded: {first_line(exc)}") from exc
    return part.to(device)


__all__ = ["ModelError", "ModelRef", "check_tokenizer", "first_line", "flow_single_file_problem",
           "load_component", "needs_base",
           "load_pipeline", "model_hash",
           "native_size", "resolve_model", "scaled_file_problem"]
