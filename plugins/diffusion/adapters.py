"""LoRAs and IP-Adapters on a shared pipeline: load once, switch per call, switch off after.

The UNet is shared by every recipe that uses the model, so each call sets exactly the
adapters its recipe names and a recipe without adapters gets the plain model back.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from PIL import Image

from photobatch.plugins.diffusion.loading import first_line
from photobatch.plugins.diffusion.sources import (
    ModelError,
    cache_only_reason,
    cached_snapshot,
    names_a_path,
)

# Where the hub's h94/IP-Adapter keeps each family's adapter (a local copy has the same layout).
IP_ADAPTER_DEFAULTS = {
    "sd1": ("models", "ip-adapter_sd15.safetensors"),
    "sd2": ("models", "ip-adapter_sd15.safetensors"),
    "sdxl": ("sdxl_models", "ip-adapter_sdxl.safetensors"),
    # XLabs-AI/flux-ip-adapter keeps its one file at the top.
    "flux": ("", "ip_adapter.safetensors"),
}
# The image encoder FLUX.1 IP-Adapters were trained with, where the adapter has none beside it
# (XLabs' repository holds the adapter alone).
FLUX_IMAGE_ENCODER = "openai/clip-vit-large-patch14"


def adapter_name(source: str) -> str:
    """A stable adapter name for a LoRA source (peft names must be identifiers)."""
    return "lora_" + hashlib.sha1(source.encode()).hexdigest()[:12]


def apply_loras(pipe, loaded, loras) -> None:
    """Activate exactly ``loras`` (LoraSpec with resolved paths) with their weights on ``pipe``."""
    if not loras:
        if loaded.loras:
            pipe.disable_lora()
        return
    names = []
    for spec in loras:
        name = adapter_name(spec.path)
        if name not in loaded.loras:
            _load_lora(pipe, spec.path, name)
            loaded.loras[name] = spec.path
        names.append(name)
    pipe.enable_lora()
    pipe.set_adapters(names, adapter_weights=[spec.weight for spec in loras])


def load_embeddings(pipe, loaded, embeddings) -> None:
    """Make each textual-inversion embedding's token known to ``loaded``'s text encoder.

    Loaded once per model and kept: a token changes nothing until a prompt uses it, so
    recipes without it are unaffected.
    """
    for spec in embeddings:
        known = loaded.embeddings.get(spec.token)
        if known == spec.path:
            continue
        if known is not None:
            raise ModelError(f"embedding token {spec.token!r} already calls up {Path(known).name} in "
                             f"this model; give {Path(spec.path).name} another token")
        path = Path(spec.path)
        if path.suffix.lower() != ".safetensors":
            raise ModelError(f"embedding {path.name}: only .safetensors files are loaded "
                             "(pickle files can run code)")
        if not path.is_file():
            raise ModelError(f"embedding {spec.path} does not exist")
        try:
            if getattr(pipe, "text_encoder_2", None) is not None:
                _load_sdxl_embedding(pipe, path, spec.token)
            else:
                pipe.load_textual_inversion(str(path), token=spec.token)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelError(f"embedding {path.name} could not be loaded: {first_line(exc)}") from exc
        loaded.embeddings[spec.token] = spec.path


def _load_sdxl_embedding(pipe, path: Path, token: str) -> None:
    # SDXL embeddings carry one set of vectors per text encoder ("clip_l", "clip_g"), each
    # loaded into its own encoder and tokenizer (the layout diffusers' docs give for SDXL).
    from safetensors.torch import load_file

    state = load_file(str(path))
    if not {"clip_l", "clip_g"} <= set(state):
        raise ModelError(f"embedding {path.name} is not an SDXL embedding (it needs clip_l and "
                         f"clip_g vectors, it has {', '.join(sorted(state)) or 'none'})")
    pipe.load_textual_inversion(state["clip_l"], token=token, text_encoder=pipe.text_encoder,
                                tokenizer=pipe.tokenizer)
    pipe.load_textual_inversion(state["clip_g"], token=token, text_encoder=pipe.text_encoder_2,
                                tokenizer=pipe.tokenizer_2)


def _load_lora(pipe, source: str, name: str) -> None:
    import warnings

    path = Path(source)
    with warnings.catch_warnings():
        # peft warns on every second adapter; several LoRAs at once are what we want.
        warnings.filterwarnings("ignore", message="Already found a `peft_config`")
        _load_lora_file(pipe, path, source, name)


def _load_lora_file(pipe, path: Path, source: str, name: str) -> None:
    try:
        if path.is_file():
            if path.suffix.lower() != ".safetensors":
                raise ModelError(f"lora {path.name}: only .safetensors LoRAs are loaded (pickle files can run code)")
            pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=name)
        elif path.is_dir():
            pipe.load_lora_weights(str(path), adapter_name=name)
        elif names_a_path(source):
            raise ModelError(f"lora {source} does not exist")
        elif (cache_only := cache_only_reason()) is None:
            pipe.load_lora_weights(source, adapter_name=name)
        else:
            # diffusers cannot pick a repo's weights file without asking the hub; the cached
            # snapshot is a folder, where it picks one by itself.
            folder = cached_snapshot(source)
            if folder is None:
                raise ModelError(f"lora {source} is not in the Hugging Face cache and {cache_only}")
            pipe.load_lora_weights(folder, adapter_name=name)
    except ModelError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelError(f"lora {source} could not be loaded: {first_line(exc)}") from exc


def load_reference(path: str) -> Image.Image:
    """A reference photo upright and in sRGB, decoded by the built-in readers (RAW included; a
    missing or unreadable file is a clear error). Runs read through their cache's reader,
    which uses the app's readers and keeps what it decoded."""
    from photobatch.plugins.reference_photos import read_reference

    return read_reference(path)


def apply_ip_adapter(pipe, loaded, spec, conditioning: dict | None = None, read=load_reference) -> dict:
    """Load (once) and scale the IP-Adapter ``spec``, or unload one a previous recipe left.

    Returns the pipeline keyword arguments for the reference image. A ``spec`` naming FLUX.1
    Redux gives prompt embeddings instead, made from ``conditioning`` (prompt_arguments'); one
    whose model is "native" hands the photo to the model itself. Reference photos are read
    with ``read`` (a path -> an sRGB picture).
    """
    from photobatch.plugins.diffusion.native_reference import native_reference_arguments
    from photobatch.plugins.diffusion.redux import is_redux, redux_arguments

    key = ((spec.model, spec.subfolder, spec.weight_name), id(pipe)) if spec is not None else None
    # Asked once a model: a loaded adapter, or a loaded Redux prior, says what it is already.
    redux = (spec is not None and not spec.native and loaded.ip_adapter != key
             and (spec.model in loaded.priors or is_redux(spec.model)))
    if loaded.ip_adapter is not None and loaded.ip_adapter != key:
        pipe.unload_ip_adapter()
        loaded.ip_adapter = None
    if spec is None:
        return {}
    if spec.native:
        return native_reference_arguments(spec, read)
    if redux:
        references = [read(path) for path in spec.references] or [read("")]
        return redux_arguments(pipe, loaded, spec, conditioning or {}, references)
    if loaded.ip_adapter is None:
        _load_ip_adapter(pipe, spec, loaded.info.family.name, loaded.dtype)
        loaded.ip_adapter = key
    pipe.set_ip_adapter_scale(spec.scale)
    if isinstance(spec.reference, tuple):
        # One adapter, several photos: their image tokens condition together.
        return {"ip_adapter_image": [[read(path) for path in spec.reference]]}
    return {"ip_adapter_image": read(spec.reference)}


def _load_ip_adapter(pipe, spec, family: str, dtype=None) -> None:
    subfolder, weight_name = IP_ADAPTER_DEFAULTS.get(family, IP_ADAPTER_DEFAULTS["sd1"])
    subfolder = spec.subfolder if spec.subfolder is not None else subfolder
    weight_name = spec.weight_name or weight_name
    path = Path(spec.model)
    kwargs, cache_only = {}, None
    if path.is_file():
        # A bare adapter file: its image encoder sits beside it in image_encoder/.
        location, subfolder, weight_name = str(path.parent), "", path.name
    elif path.is_dir():
        location = str(path)
    elif names_a_path(spec.model):
        raise ModelError(f"ip_adapter {spec.model} does not exist")
    else:
        location = spec.model
        cache_only = cache_only_reason()
        kwargs["local_files_only"] = cache_only is not None
    if family == "flux":
        # diffusers' FLUX.1 loader names its image encoder in full (and would load it in fp16).
        beside = Path(location, subfolder or "", "image_encoder")
        kwargs.update(image_encoder_pretrained_model_name_or_path=(
            str(beside) if beside.is_dir() else FLUX_IMAGE_ENCODER), image_encoder_dtype=dtype)
    else:
        kwargs["image_encoder_folder"] = "image_encoder"
    try:
        pipe.load_ip_adapter(location, subfolder=subfolder, weight_name=weight_name, **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        if cache_only:
            raise ModelError(f"ip_adapter {spec.model} is not in the Hugging Face cache and "
                             f"{cache_only}") from None
        raise ModelError(f"ip_adapter {spec.model} could not be loaded: {first_line(exc)}") from exc
