"""Model families (SD 1.x, SD 2.x, SDXL, SD 3.x, FLUX.1, FLUX.2 [klein], Qwen-Image, Z-Image): how
to recognise each and its native working size.

The family decides the pipeline classes a single file is loaded with (diffusers' Auto pipelines
have no ``from_single_file``), the pixel count inputs are resized to and what their sides must
divide by. SD 3.x, FLUX.1, FLUX.2, Qwen-Image and Z-Image are flow-matching transformers
(``flow``): they take other samplers and arguments than the UNet families (``flow.py``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Family:
    """A model family: its name, native side in pixels and concrete diffusers pipeline classes."""

    name: str
    native: int
    img2img_class: str
    inpaint_class: str
    label: str  # the name users know: "SD 1.x", "SDXL", "FLUX.1", "Z-Image"
    # Working sizes divide by this: the VAE's 8, times 2 where a transformer packs latents in
    # 2x2 patches (the flow families).
    multiple: int = 8
    flow: bool = False  # a flow-matching transformer (SD 3.x, FLUX.1, FLUX.2, ...), not a UNet
    # The most pixels its pipelines work at (None: any): diffusers' FLUX.2 [klein] pipeline
    # scales anything larger down to a megapixel itself.
    max_pixels: int | None = None
    # The text encoders it reads (A1111's clip skip needs a CLIP among them).
    reads: str = "CLIP"
    # How many reference photos its pipelines take themselves (a recipe's ip_adapter model
    # "native"; 0: none).
    reference_input: int = 0


SD1 = Family("sd1", 512, "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline", "SD 1.x")
SD2 = Family("sd2", 768, "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline", "SD 2.x")
SDXL = Family("sdxl", 1024, "StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLInpaintPipeline",
              "SDXL")
SD3 = Family("sd3", 1024, "StableDiffusion3Img2ImgPipeline", "StableDiffusion3InpaintPipeline",
             "SD 3.x", multiple=16, flow=True, reads="CLIP and T5")
FLUX = Family("flux", 1024, "FluxImg2ImgPipeline", "FluxInpaintPipeline", "FLUX.1", multiple=16,
              flow=True, reads="T5")
# Tongyi-MAI's Z-Image (Turbo and base): a single-stream transformer reading Qwen3's hidden
# states, FLUX.1's 16-channel VAE, latents in 2x2 patches.
ZIMAGE = Family("zimage", 1024, "ZImageImg2ImgPipeline", "ZImageInpaintPipeline", "Z-Image",
                multiple=16, flow=True, reads="Qwen3")
# BFL's FLUX.2 [klein] (4B and 9B, distilled or base): a FLUX.2 transformer reading Qwen3's
# hidden states, FLUX.2's 32-channel VAE. Its strength-taking pipeline is the inpainting one,
# which also reads the photo itself (as Kontext does), for img2img with everything masked.
FLUX2 = Family("flux2", 1024, "Flux2KleinInpaintPipeline", "Flux2KleinInpaintPipeline", "FLUX.2",
               multiple=16, flow=True, max_pixels=1024 * 1024, reads="Qwen3",
               reference_input=4)  # BFL: klein takes up to 4
# Alibaba's Qwen-Image: an MMDiT reading Qwen2.5-VL's hidden states, a Wan-style VAE; real
# classifier-free guidance (diffusers' true_cfg_scale).
QWENIMAGE = Family("qwenimage", 1024, "QwenImageImg2ImgPipeline", "QwenImageInpaintPipeline",
                   "Qwen-Image", multiple=16, flow=True, reads="Qwen2.5-VL")
FAMILIES = {f.name: f for f in (SD1, SD2, SDXL, SD3, FLUX, FLUX2, QWENIMAGE, ZIMAGE)}

# The pipelines photobatch runs: Stable Diffusion 1.x/2.x and SDXL, as text-to-image, img2img or
# inpainting folders, LCM-distilled SD (run by the SD pipelines, which read its guidance
# embedding), SD 3.x, FLUX.1, Qwen-Image and Z-Image (text-to-image, img2img or inpainting
# folders), FLUX.1 Kontext and FLUX.2 [klein] (each run through its inpainting pipeline, which
# takes a strength), FLUX.1 Fill (an inpainting model) and Qwen-Image-Edit (run through
# diffusers' Edit inpainting pipeline, the one that takes a strength; Edit 2509 and later,
# "Plus", through the same conditioned as Plus's own pipeline: qwen_edit.py). Others
# (ControlNet pipelines saved whole, Redux, Qwen-Image-Layered) load in diffusers but take other
# arguments or make other outputs; they are refused by name instead of failing mid-run.
_SUPPORTED_CLASS = re.compile(
    r"^(StableDiffusion(XL|3)?(Img2Img|Inpaint)?|LatentConsistencyModel(Img2Img)?"
    r"|Flux(Img2Img|Inpaint)?|FluxKontext(Inpaint)?|FluxFill|Flux2(Klein(Inpaint)?)?"
    r"|QwenImage(Img2Img|Inpaint|Edit|EditInpaint|EditPlus)?|ZImage(Img2Img|Inpaint)?)Pipeline$")
# (Longest prefix first: "Flux2" before "Flux".)
_FLOW_FAMILY = (("Flux2", FLUX2), ("Flux", FLUX), ("StableDiffusion3", SD3), ("QwenImage", QWENIMAGE),
                ("ZImage", ZIMAGE))

# Keys of the original (CompVis / Stability) single-file layout that tell the families apart.
_SDXL_KEY = "conditioner.embedders.1.model.positional_embedding"
_SD2_KEY = "cond_stage_model.model.token_embedding.weight"
_SD1_KEY = "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"
_UNET_IN_KEY = "model.diffusion_model.input_blocks.0.0.weight"


# A flow transformer's blocks, in the original (BFL / Stability / Tongyi) layout, bare or under
# the ComfyUI all-in-one prefix. Z-Image's is the key diffusers' single-file loader tells it by;
# Qwen-Image's files keep diffusers' own names.
# FLUX.2's first: its files have FLUX.1's double blocks too, and a shared modulation FLUX.1's lack.
_FLOW_SINGLE_FILE_KEYS = (("single_stream_modulation.lin.weight", "flux2"),
                          ("double_blocks.0.img_attn.qkv.weight", "flux"),
                          ("joint_blocks.0.x_block.attn.qkv.weight", "sd3"),
                          ("layers.0.adaLN_modulation.0.weight", "zimage"),
                          ("txt_norm.weight", "qwenimage"))


_FILL_INPUTS = 384
# The variants of Qwen-Image-Edit: the first, and Plus (2509 and later).
EDIT_VARIANTS = ("edit", "edit-plus")
# The reference photos a model of its own kind reads beside the photo, where its family's
# number is not it: Qwen-Image-Edit Plus one to three images in all (Qwen's model card), FLUX.2
# [dev] up to 10 reference images (BFL's).
_VARIANT_REFERENCES = {"edit-plus": 2, "dev": 10}


def _file_variant(flow: Family, keys: set[str], fill: bool) -> str | None:
    """What a flow transformer file's own tensors tell of its kind: "fill" (FLUX.1 Fill, told
    by its caller from its input layer), "dev" (FLUX.2 [dev]: a guidance embedding, which klein
    lacks), else None (Kontext and the Edit models have their bases' layout: model_config
    tells)."""
    if fill:
        return "fill"
    if flow is FLUX2 and any(key.endswith("guidance_in.in_layer.weight") for key in keys):
        return "dev"
    return None


def _family_of_gguf(path: Path) -> ModelInfo:
    """A GGUF file's family: a flow transformer's (city96's FLUX.1, Qwen-Image, Z-Image files),
    told by its tensor names as a .safetensors one is, or an SD 1.x/2.x/SDXL UNet's."""
    from gguf import GGUFReader

    from photobatch.plugins.diffusion.sources import first_line

    try:
        # (Its tensors are memory-mapped: only their names, shapes and types are read here.)
        listed = GGUFReader(str(path)).tensors
    except Exception as exc:  # the reader's own errors: a cut-short or foreign file
        raise ValueError(f"{path.name} is not a readable GGUF file ({first_line(exc)})") from None
    tensors = {t.name: [int(n) for n in t.shape] for t in listed}
    names = set(tensors)
    flow = _flow_single_file(names)
    unet = _unet_of_gguf(tensors) if flow is None else None
    if flow is None and unet is None:
        raise ValueError(f"{path.name} is a GGUF file of no model photobatch reads as GGUF (the "
                         "UNets of SD 1.x, 2.x and SDXL, the transformers of FLUX.1, FLUX.2, SD "
                         "3.x, Qwen-Image and Z-Image)")
    if problem := _gguf_type_problem(path, {t.tensor_type for t in listed}):
        raise ValueError(problem)
    if unet is not None:
        return unet
    img_in = tensors.get("img_in.weight") or tensors.get("model.diffusion_model.img_in.weight") or []
    fill = flow is FLUX and _FILL_INPUTS in img_in  # (GGUF lists a tensor's sides innermost first)
    return ModelInfo(flow, fill, flow.native, _file_variant(flow, names, fill))


def _unet_of_gguf(tensors: dict[str, list[int]]) -> ModelInfo | None:
    """An SD 1.x/2.x/SDXL UNet as GGUF (ComfyUI-GGUF's files, the UNet's original names with or
    without their "model.diffusion_model." prefix), or None. Its text encoders, which tell the
    families apart in a whole checkpoint, are not in it: SDXL's UNet has the size conditioning
    (label_emb), SD 2.x's reads 1024-wide text states, SD 1.x's 768."""
    bare = {name.removeprefix("model.diffusion_model."): shape for name, shape in tensors.items()}
    first = bare.get(_UNET_IN_KEY.removeprefix("model.diffusion_model."))
    if first is None:
        return None
    # (GGUF lists a tensor's sides innermost first: a conv's are kernel, kernel, in, out.)
    inpainting = len(first) == 4 and first[2] == 9
    widths = {shape[0] for name, shape in bare.items() if name.endswith("attn2.to_k.weight")}
    if any(name.startswith("label_emb.") for name in bare):
        family = SDXL
    elif 1024 in widths:
        family = SD2
    else:
        family = SD1
    return ModelInfo(family, inpainting, family.native)


def _gguf_type_problem(path: Path, types: set) -> str | None:
    """Why diffusers cannot read a GGUF file holding tensors of these quantisation types (its
    loader would say so only after reading every tensor, naming the first), or None."""
    from diffusers.quantizers.gguf.utils import SUPPORTED_GGUF_QUANT_TYPES
    from gguf import GGMLQuantizationType

    readable = {*SUPPORTED_GGUF_QUANT_TYPES, GGMLQuantizationType.F32, GGMLQuantizationType.F16}
    unread = sorted(t.name for t in types - readable)
    if not unread:
        return None
    known = ", ".join(sorted(t.name for t in SUPPORTED_GGUF_QUANT_TYPES))
    return (f"{path.name} holds {', '.join(unread)} weights, which diffusers cannot read (it reads "
            f"F32, F16 and {known}); use a file of one of those (city96's Q8_0, Q6_K, Q5_K_M or "
            "Q4_K_S, for instance)")


def _flow_single_file(keys: set[str]) -> Family | None:
    for key, name in _FLOW_SINGLE_FILE_KEYS:
        if key in keys or "model.diffusion_model." + key in keys:
            return FAMILIES[name]
    return None


@dataclass(frozen=True)
class ModelInfo:
    """What a model is: its family, whether its UNet is an inpainting one, its native side."""

    family: Family
    inpainting: bool
    native: int
    # A model of its own kind: "kontext" (FLUX.1 Kontext, which also reads the photo itself
    # beside the noise), "fill" (FLUX.1 Fill, BFL's inpainting model), "edit" (Qwen-Image-Edit,
    # which reads the photo beside the noise and, through its Qwen2.5-VL, with the prompt) or
    # "edit-plus" (Qwen-Image-Edit 2509 and later, which reads it at another size and prompt) or
    # "dev" (FLUX.2 [dev]: Mistral-conditioned, its guidance distilled; the other FLUX.2 are klein).
    variant: str | None = None
    # A guidance-distilled FLUX.2 [klein] (its pipeline's is_distilled): it runs no classifier-free
    # guidance, whatever the cfg.
    distilled: bool = False

    @property
    def kontext(self) -> bool:
        """Whether this is a FLUX.1 Kontext model."""
        return self.variant == "kontext"

    @property
    def edit(self) -> bool:
        """Whether this is a Qwen-Image-Edit model (the first, or Plus: 2509 and later)."""
        return self.variant in EDIT_VARIANTS

    @property
    def reads_photo(self) -> bool:
        """Whether the model takes a strength only in its inpainting pipeline, which also reads
        the photo itself beside the noise (FLUX.1 Kontext, FLUX.2 [klein], Qwen-Image-Edit):
        img2img runs there with everything masked."""
        return self.kontext or self.edit or self.family.name == "flux2"

    @property
    def reference_input(self) -> int:
        """How many reference photos the model reads itself beside the photo (a recipe's
        ip_adapter model "native"; 0: none): FLUX.2 [klein] 4 (BFL's limit), Qwen-Image-Edit
        Plus 2 (Qwen: 1 to 3 images in all, the photo among them), FLUX.2 [dev] 10 (BFL's)."""
        return _VARIANT_REFERENCES.get(self.variant, self.family.reference_input)

    @property
    def label(self) -> str:
        """What the model is, in words: "SDXL", "FLUX.1 Kontext", "FLUX.2 [klein], distilled"."""
        label = self.family.label
        if self.edit:
            label += "-Edit" + (" Plus" if self.variant == "edit-plus" else "")
        elif self.variant == "dev":
            label += " [dev]"
        elif self.variant:
            label += " " + self.variant.capitalize()
        if self.family.name == "flux2" and self.variant != "dev":
            label += " [klein]" + (", distilled" if self.distilled else "")
        if self.inpainting and self.variant != "fill":
            label += " (inpainting)"
        return label

    @property
    def table(self) -> str:
        """The name of the recipe tables this model runs with ("kontext" and "fill" apply
        flux's, then their own; "qwenimage_edit" qwenimage's, then its own; "flux2_dev" flux2's,
        then its own)."""
        if self.edit:
            return "qwenimage_edit"
        if self.variant == "dev":
            return "flux2_dev"
        return self.variant or self.family.name


def unsupported_pipeline(class_name: str | None, what: str) -> str | None:
    """Why a model whose pipeline class is ``class_name`` cannot run here (``what`` names it),
    or None when it can (or the class is not known)."""
    if not class_name or _SUPPORTED_CLASS.match(class_name):
        return None
    return (f"{what} is a {class_name}; photobatch runs Stable Diffusion 1.x, 2.x, SDXL, SD 3.x, "
            "FLUX.1 (Kontext and Fill included), FLUX.2 ([klein] and [dev]), Qwen-Image (Edit "
            "included) and Z-Image models (StableDiffusion, StableDiffusionXL, StableDiffusion3, "
            "Flux, FluxKontext, FluxFill, Flux2Klein, Flux2, QwenImage, QwenImageEdit and ZImage pipeline "
            "folders, their img2img and inpainting forms, and single-file checkpoints)")


def pag_problem(family: Family, task: str, with_controlnet: bool) -> str | None:
    """Why perturbed-attention guidance cannot run for this family, task ("img2img" or
    "inpaint") and ControlNet use (diffusers has a PAG pipeline for some combinations only),
    or None when it can."""
    import diffusers

    if family.flow:
        return f"perturbed-attention guidance runs on SD 1.x, 2.x and SDXL models, not {family.label}"
    name = (f"StableDiffusion{'XL' if family.name == 'sdxl' else ''}"
            f"{'ControlNet' if with_controlnet else ''}PAG"
            f"{'Inpaint' if task == 'inpaint' else 'Img2Img'}Pipeline")
    if hasattr(diffusers, name):
        return None
    with_cn = " with a ControlNet" if with_controlnet else ""
    return (f"diffusers has no perturbed-attention guidance pipeline for {family.label} {task}"
            f"{with_cn}; leave out pag{' or the controlnet' if with_cn else ''}")


def folder_class_name(folder: str | Path) -> str | None:
    """The pipeline class a diffusers folder's model_index.json names, or None."""
    try:
        index = json.loads((Path(folder) / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return index.get("_class_name")


def pipeline_variant(class_name: str | None) -> str | None:
    """Which model of its own kind a pipeline class (a folder's, or a loaded pipeline's) is:
    "kontext", "fill" (FLUX.1), "dev" (FLUX.2 [dev]), "edit", "edit-plus" (Qwen-Image-Edit), or
    None."""
    name = class_name or ""
    if name == "Flux2Pipeline":
        return "dev"
    for prefix, variant in (("FluxKontext", "kontext"), ("FluxFill", "fill"),
                            ("QwenImageEditPlus", "edit-plus"), ("QwenImageEdit", "edit")):
        if name.startswith(prefix):
            return variant
    return None


def _flow_family(class_name: str) -> Family | None:
    return next((family for prefix, family in _FLOW_FAMILY if class_name.startswith(prefix)), None)


def family_of_pipeline(pipe) -> ModelInfo:
    """The family of a loaded pipeline, from its components (works for any source)."""
    flow = _flow_family(type(pipe).__name__)
    if flow is not None:
        # Their transformers keep no working size: the pipelines' own default is 128 latents.
        side = int(getattr(pipe, "default_sample_size", 128)) * int(getattr(pipe, "vae_scale_factor", 8))
        variant = pipeline_variant(type(pipe).__name__)
        distilled = bool(getattr(pipe.config, "is_distilled", False))
        return ModelInfo(flow, variant == "fill", side, variant, distilled)
    unet = pipe.unet
    cross = int(getattr(unet.config, "cross_attention_dim", 768) or 768)
    if getattr(pipe, "text_encoder_2", None) is not None or "XL" in type(pipe).__name__:
        family = SDXL
    elif cross == 1024:
        family = SD2
    else:
        family = SD1
    sample = getattr(unet.config, "sample_size", None) or family.native // 8
    if isinstance(sample, (list, tuple)):
        sample = sample[0]
    native = int(sample) * int(getattr(pipe, "vae_scale_factor", 8))
    return ModelInfo(family, int(unet.config.in_channels) == 9, native)


def family_of_folder(folder: str | Path) -> ModelInfo:
    """The family of a diffusers folder, from model_index.json and unet/config.json (no weights read)."""
    folder = Path(folder)
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    flow = _flow_family(index.get("_class_name", ""))
    if flow is not None:
        variant = pipeline_variant(index.get("_class_name"))
        return ModelInfo(flow, variant == "fill", flow.native, variant, bool(index.get("is_distilled")))
    unet_config_path = folder / "unet" / "config.json"
    unet = json.loads(unet_config_path.read_text(encoding="utf-8")) if unet_config_path.is_file() else {}
    if "XL" in index.get("_class_name", "") or "text_encoder_2" in index:
        family = SDXL
    elif int(unet.get("cross_attention_dim") or 768) == 1024:
        family = SD2
    else:
        family = SD1
    sample = unet.get("sample_size") or family.native // 8
    if isinstance(sample, (list, tuple)):
        sample = sample[0]
    return ModelInfo(family, int(unet.get("in_channels", 4)) == 9, int(sample) * 8)


def family_of_single_file(path: str | Path) -> ModelInfo:
    """The family of a single-file ``.safetensors`` checkpoint (or a ``.gguf`` transformer), from
    its tensor names and one shape.

    Reads the file's header only (no weights, no torch), so it is cheap enough to check a model
    before the first photo. Raises ValueError for a file that is no checkpoint of a known family.
    """
    from safetensors import SafetensorError, safe_open

    if str(path).lower().endswith(".gguf"):
        return _family_of_gguf(Path(path))
    try:
        with safe_open(str(path), framework="numpy") as fh:
            keys = set(fh.keys())
            in_channels = fh.get_slice(_UNET_IN_KEY).get_shape()[1] if _UNET_IN_KEY in keys else 4
            # FLUX.1 Fill's transformer also reads the masked photo and the mask: 384 inputs, not 64.
            img_in = next((k for k in ("img_in.weight", "model.diffusion_model.img_in.weight")
                           if k in keys), None)
            fill = img_in is not None and fh.get_slice(img_in).get_shape()[1] == _FILL_INPUTS
    except SafetensorError as exc:
        raise ValueError(f"{Path(path).name} is not a readable .safetensors file ({exc})") from None
    if _SDXL_KEY in keys or any(k.startswith("conditioner.embedders.1.") for k in keys):
        family = SDXL
    elif _SD2_KEY in keys:
        family = SD2
    elif _SD1_KEY in keys or any(k.startswith("cond_stage_model.transformer.") for k in keys):
        family = SD1
    elif flow := _flow_single_file(keys):
        # The transformer (alone, or with text encoders beside it: what is read is the
        # transformer; the rest comes from the model_config folder).
        fill = fill and flow is FLUX
        return ModelInfo(flow, fill, flow.native, _file_variant(flow, keys, fill))
    else:
        raise ValueError(
            f"{Path(path).name} does not look like a Stable Diffusion 1.x, 2.x or SDXL checkpoint "
            "(no known text encoder keys)"
        )
    return ModelInfo(family, int(in_channels) == 9, family.native)
