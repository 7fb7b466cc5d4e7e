"""The recipe schema: frozen dataclasses, validation with precise messages, and a fingerprint."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from photobatch.recipes.prompt_syntax import surely_longer_than_a_chunk, uses_syntax
from photobatch.recipes.suggest import did_you_mean
from photobatch.recipes.runner_fields import (
    CONTROLNET_COUNTED_WHEN_SET,
    FAMILY_FIELDS,
    FAMILY_NAMES,
    FLOW_FAMILY_NAMES,
    FLOW_SAMPLER_NAMES,
    FULL_RESOLUTION,
    SCHEDULES,
    WORKING_SIZE_MAX,
    WORKING_SIZE_MIN,
    ControlNetSettings,
    EmbeddingSettings,
    IPAdapterSettings,
    FreeUSettings,
    LoraSettings,
    PAGSettings,
    RefinerSettings,
    as_controlnet,
    as_embeddings,
    as_ip_adapter,
    as_loras,
    as_freeu,
    as_pag,
    as_refiner,
    check_controlnet,
    check_embeddings,
    check_family_ip_adapter,
    check_ip_adapter,
    check_loras,
    check_freeu,
    check_pag,
    check_refiner,
    family_overrides,
    frozen_family,
    schedule_problem,
    wants_caption,
)

# Sampler names as A1111 users know them; the runner maps each to a diffusers scheduler.
SAMPLERS = ("Euler", "Euler a", "DPM++ 2M", "DPM++ 2M Karras", "DPM++ 2M SDE", "DPM++ 2M SDE Karras",
            "DPM++ SDE", "DPM++ SDE Karras", "DPM2", "DPM2 Karras", "DPM2 a", "DPM2 a Karras",
            "Heun", "LMS", "LMS Karras", "DDIM", "UniPC", "LCM", "PNDM", "DEIS", "DPM++ 3M SDE", "TCD")
# "lossless" is a TIFF at the source's bit depth: 16 bits for RAW and other 16-bit sources.
# A writer plugin adds its own name; the app checks that the named writer exists.
OUTPUT_FORMATS = ("jpeg", "tiff", "png", "lossless")
# Lightroom's export sharpening: what it is for, and how much.
OUTPUT_SHARPENING = ("none", "screen", "matte", "glossy")
SHARPEN_AMOUNTS = ("low", "standard", "high")
OUTPUT_BIT_DEPTHS = (8, 16)
OUTPUT_COLOR_SPACES = ("source", "srgb", "adobe-rgb")
# Sidecar naming: Lightroom and Capture One use IMG_1.xmp, darktable IMG_1.jpg.xmp.
OUTPUT_SIDECARS = ("none", "lightroom", "darktable")
METADATA_POLICIES = ("all", "no-location", "copyright-only", "none")
NAME_TOKENS = ("stem", "recipe", "ext", "date", "camera", "seq", "seed")
COLLISION_POLICIES = ("suffix", "overwrite", "skip")
MASKS = ("none", "faces", "sidecar")
REFERENCE_COLORS = ("none", "before", "after", "both")
# Where a watermark sits: Lightroom's nine anchors.
WATERMARK_POSITIONS = ("top-left", "top", "top-right", "left", "center", "right",
                       "bottom-left", "bottom", "bottom-right")


class RecipeError(ValueError):
    """A recipe that cannot be used, with a message naming the recipe, field, value and rule."""


@dataclass(frozen=True)
class OutputSettings:
    """Where and how a recipe's output file is written."""

    format: str = "jpeg"
    quality: int = 95
    name: str = "{stem}_{recipe}"
    metadata: str = "all"
    bit_depth: int | None = None  # None: the source's (8 or 16), as far as the format holds it
    color_space: str = "source"  # keep the source's ICC profile, or convert to sRGB / Adobe RGB
    sidecar: str = "none"
    progressive: bool = False  # JPEG only
    # A subfolder of the output folder, with the same tokens as the name ("{date}", "{camera}").
    subfolder: str = ""
    # When a file of that name exists and is not this photo's own earlier output.
    collision: str = "suffix"
    # Fit the output within this many pixels on its longest side (0: the photo's full size).
    max_side: int = 0
    # Lightroom's export "Output Sharpening": for screen, matte or glossy paper (after max_side).
    sharpen: str = "none"
    sharpen_amount: str = "standard"
    # Pixels per inch written into the file for printing (Lightroom's export "Resolution");
    # 0 keeps the source's.
    ppi: int = 0
    # Text drawn on the output (Lightroom's copyright watermark); "": none.
    watermark: str = ""
    # Or a graphic (the photographer's logo, a PNG with transparency), as Lightroom's graphic
    # watermark; a path relative to the recipe file.
    watermark_image: str = ""
    # Where either sits, how big (its width, percent of the picture's shorter side; 0:
    # automatic), how opaque (percent), and how far in from the edges (percent of the shorter
    # side).
    watermark_position: str = "bottom-right"
    watermark_size: float = 0.0
    watermark_opacity: int = 67
    watermark_inset: float = 3.0
    # Set when the recipe loads: a new logo in the same file makes earlier outputs stale.
    watermark_image_sha256: str | None = None

    def __post_init__(self):
        if self.bit_depth == 16 and self.format == "jpeg":
            raise RecipeError("output.bit_depth 16 needs format 'tiff', 'png' or 'lossless' "
                              "(JPEG holds 8 bits per channel)")
        if self.watermark and self.watermark_image:
            raise RecipeError("output.watermark and output.watermark_image are both set: a "
                              "watermark is text or a graphic, as in Lightroom (choose one)")


@dataclass(frozen=True)
class Recipe:
    """A named, validated recipe; recipes are data, loaded from TOML."""

    name: str
    description: str = ""
    runner: str = "img2img"
    model: str | None = None
    prompt: str = ""
    negative_prompt: str = ""
    strength: float = 0.2
    steps: int = 30
    cfg: float = 6.0
    # FLUX.1 only (its cfg is distilled guidance): classifier-free guidance with the negative
    # prompt on top, diffusers' true_cfg_scale; 1 is off, above it each step runs twice.
    true_cfg: float = 1.0
    sampler: str = "DPM++ 2M"
    # A1111's "Schedule type": how the steps are spread over the noise levels ("Automatic": the
    # sampler's own, which a name such as "DPM++ 2M Karras" gives).
    schedule: str = "Automatic"
    seed: int | None = None
    # A1111's "Clip skip": 1 uses the text encoder's last layer, 2 the one before (anime-style
    # models are trained for 2), and so on.
    clip_skip: int = 1
    # A VAE of the recipe's own (A1111's "SD VAE"): a diffusers folder, a .safetensors file or a
    # hub id; the model's own when unset.
    vae: str | None = None
    # Runner: A1111 "do exactly the amount of steps the slider specifies".
    exact_steps: bool = False
    # What fills "{caption}" in the prompts: a captioning model's folder or hub id (unset: BLIP).
    captioner: str | None = None
    # A1111's width/height as a pixel budget: the model works at about working_size² pixels,
    # the photo's aspect kept (unset: the model family's native size, SD 1.x 512, SDXL 1024).
    working_size: int | None = None
    # How the low-resolution edit comes back to the photo's size (DESIGN §4).
    full_resolution: str = "resize"
    color_match: bool = False
    model_config: str | None = None
    # Inpainting (the inpaint runner): A1111 mask blur, "only masked" and its padding.
    mask_blur: int = 4
    mask_padding: int = 32
    only_masked: bool = True
    tile_overlap: int = 64
    batch: int = 1
    loras: tuple[LoraSettings, ...] = ()
    # Textual-inversion embeddings, each called up by its token in the prompts.
    embeddings: tuple[EmbeddingSettings, ...] = ()
    ip_adapter: IPAdapterSettings | None = None
    # Perturbed-attention guidance (true: scale 3 on the mid block's self-attention).
    pag: PAGSettings | None = None
    # FreeU: the UNet's backbone and skip features rebalanced (true: the family's settings).
    freeu: FreeUSettings | None = None
    # A second SDXL model for the last part of the denoising (A1111's Refiner and Switch at).
    refiner: RefinerSettings | None = None
    # One ControlNet, or several applied together (a list of tables, A1111's units).
    controlnet: ControlNetSettings | tuple[ControlNetSettings, ...] | None = None
    # Where the model may change the photo: everywhere, or only on the faces a detector finds.
    mask: str = "none"
    face_detector: str = "opencv-haar"
    face_expand: float = 0.35  # grow each face box by this fraction (forehead, chin, hairline)
    # Colour transfer toward the IP-Adapter reference: before the model, after it, or both.
    reference_colors: str = "none"
    # Classical steps after the model, in order: [{ step = "name", ...params }].
    post: tuple = ()
    output: OutputSettings = field(default_factory=OutputSettings)
    # How it runs on a model family: [family.flux] sampler = "Euler" (FAMILY_FIELDS only).
    family: tuple = ()
    source: str = ""

    def __post_init__(self):
        object.__setattr__(self, "family", frozen_family(self.family))
        # Sub-tables arrive as checked dicts from TOML; store them as frozen settings.
        object.__setattr__(self, "loras", as_loras(self.loras))
        object.__setattr__(self, "embeddings", as_embeddings(self.embeddings))
        object.__setattr__(self, "ip_adapter", as_ip_adapter(self.ip_adapter))
        object.__setattr__(self, "controlnet", as_controlnet(self.controlnet))
        object.__setattr__(self, "refiner", as_refiner(self.refiner))
        object.__setattr__(self, "freeu", as_freeu(self.freeu))
        object.__setattr__(self, "pag", as_pag(self.pag))
        object.__setattr__(self, "post", tuple(_frozen_step(entry) for entry in self.post))
        problem = schedule_problem(self.sampler, self.schedule)
        if problem:
            raise RecipeError(f"schedule {problem}")
        if self.mask != "none" and self.runner == "img2img":
            raise RecipeError(f"mask = {self.mask!r} needs runner = \"inpaint\" (the img2img runner "
                              "changes the whole photo)")
        if self.refiner is not None and self.controlnet is not None:
            raise RecipeError("refiner does not go with controlnet (diffusers' ControlNet pipelines "
                              "cannot hand over to a refiner)")
        if self.captioner and not wants_caption(self):
            raise RecipeError("captioner is set, but neither prompt says {caption} where its words go")

    @property
    def family_tables(self) -> dict[str, dict[str, Any]]:
        """The ``[family.NAME]`` tables as TOML writes them ({"flux": {"sampler": "Euler"}})."""
        return {name: {k: dict(v) if k == "ip_adapter" else v for k, v in items}
                for name, items in self.family}

    def without_family_fields(self, fields) -> "Recipe":
        """The recipe with ``fields`` taken out of every family table (a value chosen for one
        run, such as a compared cfg, is not to be set back by a table)."""
        if not self.family:
            return self
        kept = {name: {k: v for k, v in table.items() if k not in fields}
                for name, table in self.family_tables.items()}
        return dataclasses.replace(self, family=frozen_family({k: t for k, t in kept.items() if t}))

    def for_family(self, name: str) -> "Recipe":
        """The recipe as it runs on a model of family ``name`` ("sd1", "sdxl", "flux", ...):
        that family's table applied and the tables gone (itself when it has none), so its
        fingerprint is that of what runs."""
        if not self.family:
            return self
        return dataclasses.replace(self, **family_overrides(self.family, name, self.ip_adapter),
                                   family=())

    @property
    def denoising_steps(self) -> int:
        """How many denoising steps img2img really runs (diffusers and A1111: int(steps*strength))."""
        if self.exact_steps:
            return self.steps
        return int(self.steps * self.strength)

    def params(self) -> dict[str, Any]:
        """The output-affecting fields as plain data (what the fingerprint and catalog record)."""
        data = dataclasses.asdict(self)
        for key in ("name", "description", "source"):
            data.pop(key)
        # Fields added after recipes were first fingerprinted count only when set: an upgrade
        # must not make every existing output stale.
        for key, default in _COUNTED_WHEN_SET.items():
            if data.get(key) == default:
                data.pop(key)
        for key, default in _OUTPUT_COUNTED_WHEN_SET.items():
            if data["output"].get(key) == default:
                data["output"].pop(key)
        if not (self.output.watermark or self.output.watermark_image):
            for key in _WATERMARK_STYLE:  # a style with no mark to apply it to changes nothing
                data["output"].pop(key, None)
        units = data.get("controlnet")
        for unit in (units if isinstance(units, (list, tuple)) else [units] if units else []):
            for key, default in CONTROLNET_COUNTED_WHEN_SET.items():
                if unit.get(key) == default:
                    unit.pop(key, None)  # a later field, counted when set
        if any(uses_syntax(text) or surely_longer_than_a_chunk(text)
               for text in (self.prompt, self.negative_prompt)):
            # Such prompts were read as plain text, and cut at 77 tokens, before A1111's syntax
            # and chunks were: their outputs from then are stale. (A prompt that is long only
            # in subword tokens is not seen here without a tokenizer.)
            data["prompt_syntax"] = "a1111"
        return data

    @property
    def fingerprint(self) -> str:
        """sha256 of the normalised output-affecting fields; a change makes old outputs stale."""
        blob = json.dumps(self.params(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# Later fields and their defaults: left out of params() (and the fingerprint) at the default.
_OUTPUT_COUNTED_WHEN_SET = {"sharpen": "none", "sharpen_amount": "standard", "ppi": 0,
                            "watermark": "", "watermark_image": "",
                            "watermark_position": "bottom-right", "watermark_size": 0.0,
                            "watermark_opacity": 67, "watermark_inset": 3.0,
                            "watermark_image_sha256": None}
_WATERMARK_STYLE = ("watermark_position", "watermark_size", "watermark_opacity", "watermark_inset")
_COUNTED_WHEN_SET = {"clip_skip": 1, "true_cfg": 1.0, "vae": None, "embeddings": (), "schedule": "Automatic",
                     "working_size": None, "refiner": None, "freeu": None,
                     "pag": None, "captioner": None, "family": ()}


# field -> (python types accepted, check returning an error text or None)
def _range(lo: float, hi: float, lo_open: bool = False):
    def check(v):
        ok = (v > lo if lo_open else v >= lo) and v <= hi
        return None if ok else f"must be in {'(' if lo_open else '['}{lo}, {hi}], got {v!r}"

    return check


def _choice(options):
    def check(v):
        return None if v in options else (f"must be one of {', '.join(map(repr, options))}; "
                                          f"got {v!r}{did_you_mean(v, options)}")

    return check


def _format_name(v):
    if re.fullmatch(r"[a-z][a-z0-9_-]*", v):
        return None
    return (f"must be a writer's name ({', '.join(map(repr, OUTPUT_FORMATS))} or one a plugin "
            f"adds); got {v!r}{did_you_mean(v, OUTPUT_FORMATS)}")


def _template_tokens(v, require_stem: bool = True):
    import string

    try:
        names = {f for _, f, _, _ in string.Formatter().parse(v) if f is not None}
    except ValueError as exc:
        return f"is not a valid name template ({exc}): {v!r}"
    bad = names - set(NAME_TOKENS)
    if bad:
        return f"uses unknown token(s) {', '.join(sorted(bad))}; allowed: {', '.join(NAME_TOKENS)}"
    if require_stem and "stem" not in names:
        return f"must contain {{stem}} so outputs of different photos do not collide, got {v!r}"
    if not require_stem and (v.startswith("/") or ".." in v.split("/")):
        return f"must stay inside the output folder, got {v!r}"
    return None


def _name_template(v):
    return _template_tokens(v)


def _check_post(entries) -> str | None:
    for n, entry in enumerate(entries, start=1):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("step"), str) or not entry["step"]:
            return f"entry {n} must be a table with a step name, e.g. {{ step = \"frame\" }}; got {entry!r}"
    return None


def _frozen_step(entry):
    """A post-step table as a hashable, ordered (name, params) pair."""
    if isinstance(entry, tuple):
        return entry
    params = tuple(sorted((k, v) for k, v in dict(entry).items() if k != "step"))
    return (entry["step"], params)


_RECIPE_FIELDS: dict[str, tuple[tuple[type, ...], Any]] = {
    "name": ((str,), lambda v: None if v.strip() else "must not be empty"),
    "description": ((str,), None),
    "runner": ((str,), None),
    "model": ((str,), None),
    "prompt": ((str,), None),
    "negative_prompt": ((str,), None),
    "strength": ((float, int), _range(0.0, 1.0, lo_open=True)),
    "steps": ((int,), _range(1, 500)),
    "cfg": ((float, int), _range(0.0, 30.0)),
    "true_cfg": ((float, int), _range(1.0, 30.0)),
    "sampler": ((str,), _choice(SAMPLERS)),
    "schedule": ((str,), _choice(SCHEDULES)),
    "seed": ((int,), _range(0, 2**32 - 1)),
    "clip_skip": ((int,), _range(1, 12)),
    "vae": ((str,), lambda v: None if v.strip() else "must not be empty"),
    "exact_steps": ((bool,), None),
    "working_size": ((int,), _range(WORKING_SIZE_MIN, WORKING_SIZE_MAX)),
    "captioner": ((str,), lambda v: None if v.strip() else "must not be empty"),
    "full_resolution": ((str,), _choice(FULL_RESOLUTION)),
    "color_match": ((bool,), None),
    "model_config": ((str,), None),
    "mask_blur": ((int,), _range(0, 256)),
    "mask_padding": ((int,), _range(0, 1024)),
    "only_masked": ((bool,), None),
    "tile_overlap": ((int,), _range(8, 512)),
    "batch": ((int,), _range(1, 64)),
    "loras": ((list,), check_loras),
    "embeddings": ((list,), check_embeddings),
    "ip_adapter": ((dict,), check_ip_adapter),
    "controlnet": ((dict, list), check_controlnet),
    "refiner": ((dict,), check_refiner),
    "freeu": ((bool, dict), check_freeu),
    "pag": ((bool, dict), check_pag),
    "mask": ((str,), _choice(MASKS)),
    "face_detector": ((str,), None),
    "face_expand": ((float, int), _range(0.0, 2.0)),
    "reference_colors": ((str,), _choice(REFERENCE_COLORS)),
    "post": ((list,), lambda v: _check_post(v)),
    "family": ((dict,), None),  # checked by _family_tables
}
_OUTPUT_FIELDS: dict[str, tuple[tuple[type, ...], Any]] = {
    "format": ((str,), _format_name),
    "quality": ((int,), _range(1, 100)),
    "name": ((str,), _name_template),
    "metadata": ((str,), _choice(METADATA_POLICIES)),
    "bit_depth": ((int,), _choice(OUTPUT_BIT_DEPTHS)),
    "color_space": ((str,), _choice(OUTPUT_COLOR_SPACES)),
    "sidecar": ((str,), _choice(OUTPUT_SIDECARS)),
    "progressive": ((bool,), None),
    "subfolder": ((str,), lambda v: _template_tokens(v, require_stem=False)),
    "collision": ((str,), _choice(COLLISION_POLICIES)),
    "max_side": ((int,), _range(0, 100_000)),
    "sharpen": ((str,), _choice(OUTPUT_SHARPENING)),
    "sharpen_amount": ((str,), _choice(SHARPEN_AMOUNTS)),
    "ppi": ((int,), _range(0, 10_000)),
    "watermark": ((str,), lambda v: _watermark_template(v)),
    "watermark_image": ((str,), None),  # read when the recipe loads (recipes/loader.py)
    "watermark_position": ((str,), _choice(WATERMARK_POSITIONS)),
    "watermark_size": ((float, int), _range(0, 100)),
    "watermark_opacity": ((int,), _range(1, 100)),
    "watermark_inset": ((float, int), _range(0, 25)),
}


# What a watermark's text may take from the photo, as Lightroom's copyright watermark does.
WATERMARK_TOKENS = ("artist", "copyright", "year")


def watermark_tokens(template: str) -> list[str]:
    """The ``{tokens}`` a watermark ``template`` uses; ValueError for one that is not a
    WATERMARK_TOKENS name, or a brace left open."""
    import string

    used = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    unknown = [name for name in used if name not in WATERMARK_TOKENS]
    if unknown:
        raise ValueError(f"unknown token {{{unknown[0]}}} (known: "
                         + " ".join("{" + t + "}" for t in WATERMARK_TOKENS) + ")")
    return used


def _watermark_template(value: str) -> str | None:
    if len(value) > 200 or "\n" in value:
        return "must be one line of at most 200 characters"
    try:
        watermark_tokens(value)
    except ValueError as exc:
        if str(exc).startswith("unknown"):
            return f"has an {exc}"
        return f"is not a valid template ({exc}; {{{{ and }}}} write a brace): {value!r}"
    return None


def _validate_table(label: str, table: Mapping[str, Any], spec, prefix: str = "") -> dict:
    out = {}
    for key, value in table.items():
        where = f"{prefix}{key}"
        if key not in spec:
            allowed = ", ".join(sorted(spec))
            raise RecipeError(f"{label}: unknown field {where!r}{did_you_mean(key, spec)} "
                              f"(allowed: {allowed})")
        types, check = spec[key]
        # bool is an int in Python; a recipe saying `steps = true` is a typo, not 1.
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            want = " or ".join(t.__name__ for t in types)
            raise RecipeError(f"{label}: {where} must be a {want}, got {value!r}")
        problem = check(value) if check else None
        if problem:
            raise RecipeError(f"{label}: {where} {problem}")
        out[key] = float(value) if float in types else value
    return out


def check_fields(label: str, table: Mapping[str, Any], *, output: bool = False) -> dict:
    """Check recipe fields (``output``: ``[output]`` fields) as a recipe file's are checked and
    return their values (floats where a field takes one); RecipeError naming field and value."""
    if output:
        return _validate_table(label, table, _OUTPUT_FIELDS, prefix="output.")
    return _validate_table(label, table, _RECIPE_FIELDS)


def field_types(name: str, *, output: bool = False) -> tuple[type, ...] | None:
    """The Python types a recipe field (``output``: an ``[output]`` field) takes; None when
    there is no such field."""
    spec = (_OUTPUT_FIELDS if output else _RECIPE_FIELDS).get(name)
    return spec[0] if spec else None


def recipe_from_dict(data: Mapping[str, Any], source: str = "", default_name: str = "") -> Recipe:
    """Validate a parsed TOML table and return a Recipe, or raise RecipeError."""
    name = data.get("name", default_name)
    label = f"recipe {name!r}" + (f" ({source})" if source else "")
    data = dict(data)
    output = data.pop("output", {})
    if not isinstance(output, Mapping):
        raise RecipeError(f"{label}: output must be a table ([output]), got {output!r}")
    fields = _validate_table(label, data, _RECIPE_FIELDS)
    fields.setdefault("name", name)
    if not fields["name"]:
        raise RecipeError(f"{label}: name is missing")
    out_fields = _validate_table(label, output, _OUTPUT_FIELDS, prefix="output.")
    family = _family_tables(label, fields.pop("family", {}))
    try:
        recipe = Recipe(**fields, output=OutputSettings(**out_fields), family=family, source=source)
    except RecipeError as exc:
        # Cross-field rules live in the dataclasses; the label says which recipe broke them.
        raise RecipeError(f"{label}: {exc}") from None
    _check_steps(label, recipe)
    for name, table in recipe.family:
        if "ip_adapter" in dict(table) and recipe.ip_adapter is None:
            raise RecipeError(f"{label}: family.{name}.ip_adapter changes the recipe's ip_adapter, "
                              "and it has none")
        # Each family's recipe must be a valid recipe too.
        try:
            resolved = recipe.for_family(name)
        except RecipeError as exc:
            raise RecipeError(f"{label}: on {name} models (family.{name}): {exc}") from None
        _check_steps(f"{label}: on {name} models (family.{name})", resolved)
        if name in FLOW_FAMILY_NAMES and resolved.sampler not in FLOW_SAMPLER_NAMES:
            raise RecipeError(f"{label}: family.{name} runs sampler {resolved.sampler!r}; flow-matching "
                              f"models take {', '.join(map(repr, FLOW_SAMPLER_NAMES))}")
    return recipe


def _check_steps(label: str, recipe: Recipe) -> None:
    if recipe.denoising_steps < 1:
        raise RecipeError(
            f"{label}: steps x strength must give at least one denoising step, got "
            f"{recipe.steps} x {recipe.strength} = {recipe.steps * recipe.strength:g} "
            f"(raise steps to at least {int(1 / recipe.strength) + 1})"
        )


def _family_tables(label: str, value) -> tuple:
    """``[family.NAME]`` tables checked (known families, FAMILY_FIELDS with the top-level
    fields' rules) and frozen."""
    if not isinstance(value, Mapping) or not all(isinstance(t, Mapping) for t in value.values()):
        raise RecipeError(f"{label}: family must hold tables, e.g. [family.flux] with "
                          f"sampler = \"Euler\"; got {value!r}")
    spec = {key: _RECIPE_FIELDS[key] for key in FAMILY_FIELDS if key != "ip_adapter"}
    spec["ip_adapter"] = ((dict,), check_family_ip_adapter)
    checked = {}
    for name, table in value.items():
        if name not in FAMILY_NAMES:
            raise RecipeError(f"{label}: family.{name} is no model family (known: "
                              f"{', '.join(FAMILY_NAMES)})")
        checked[name] = _validate_table(label, table, spec, prefix=f"family.{name}.")
    return frozen_family(checked)
