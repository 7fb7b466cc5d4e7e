"""The runner's recipe sub-tables (ip_adapter, controlnet, loras): dataclasses and their checks.

Each check returns an error text (the schema prefixes "recipe 'NAME': FIELD ") or None, like
the schema's own checks, so messages read "recipe 'style': ip_adapter scale must be in
[0.0, 2.0], got 3.0".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from photobatch.recipes.suggest import did_you_mean

FULL_RESOLUTION = ("detail-transfer", "tiled", "resize")
# A1111's "Schedule type" names (the runner maps each to a diffusers scheduler option).
SCHEDULES = ("Automatic", "Karras", "Exponential", "Beta", "SGM Uniform")
# The schedules that replace a sampler's sigmas, and the samplers whose diffusers scheduler has
# no option for them (from_config would ignore it silently, so such a recipe is refused).
SIGMA_SCHEDULES = ("Karras", "Exponential", "Beta")
FIXED_SIGMA_SAMPLERS = ("Euler a", "DDIM", "LCM", "PNDM", "TCD")
CONTROLNET_PREPROCESSORS = ("canny", "depth", "none")
# The condition types Union ControlNets read, by the names their model cards give, with each
# model's own index: xinsir's SDXL ControlNet++ (ComfyUI's SetUnionControlNetType order; 6
# and 7 only in its promax weights) and InstantX / Shakker-Labs' FLUX.1 Union (Pro).
UNION_MODES = {
    "sdxl": {"openpose": 0, "pose": 0, "depth": 1, "softedge": 2, "hed": 2, "scribble": 2,
             "canny": 3, "lineart": 3, "mlsd": 3, "normal": 4, "segment": 5, "tile": 6,
             "repaint": 7},
    "flux": {"canny": 0, "tile": 1, "depth": 2, "blur": 3, "pose": 4, "openpose": 4, "gray": 5,
             "low-quality": 6},
}
UNION_MODE_NAMES = tuple(sorted({name for modes in UNION_MODES.values() for name in modes}))
# The mode a Union ControlNet reads when the recipe names none: what its preprocessor makes.
PREPROCESSOR_MODES = {"canny": "canny", "depth": "depth", "none": "tile"}
# Model families a recipe's [family.NAME] tables name, and the fields such a table may set
# (how a recipe runs on that family: Forge's per-architecture presets, as data).
# "kontext" is FLUX.1 Kontext: a FLUX.1 model that also sees the photo itself, and reads
# instructions ("Make it winter") better than descriptions; "fill" is FLUX.1 Fill, BFL's
# inpainting model (guidance about 30). Their tables apply over flux's. "flux2" is BFL's
# FLUX.2 [klein] (distilled: 4 steps, no guidance), "flux2_dev" FLUX.2 [dev] (guidance-distilled,
# about 28 steps; its table applies over flux2's), "qwenimage" Alibaba's Qwen-Image and
# "zimage" Tongyi-MAI's Z-Image (Turbo: 8 steps, no guidance); "qwenimage_edit" is
# Qwen-Image-Edit, a Qwen-Image model that reads the photo with the instruction (its table
# applies over qwenimage's). "edit" is no model: it words the recipe for every model that edits
# the photo it reads (Kontext and Qwen-Image-Edit, whose tables apply over it), with an
# instruction ("Change the season of this photograph to winter...") for a prompt. exact_steps is
# a family field because a distilled model runs its few steps whatever the strength (ComfyUI's
# denoise does so).
FAMILY_NAMES = ("sd1", "sd2", "sdxl", "sd3", "flux", "kontext", "fill", "flux2", "flux2_dev",
                "qwenimage", "qwenimage_edit", "zimage", "edit")
FLOW_FAMILY_NAMES = ("sd3", "flux", "kontext", "fill", "flux2", "flux2_dev", "qwenimage", "qwenimage_edit",
                     "zimage")
FAMILY_FIELDS = ("prompt", "negative_prompt", "sampler", "schedule", "cfg", "true_cfg", "steps",
                 "exact_steps", "strength", "ip_adapter")
# The tables a model's table name applies, in order.
_TABLE_CHAINS = {"kontext": ("flux", "edit", "kontext"), "fill": ("flux", "fill"),
                 "flux2_dev": ("flux2", "flux2_dev"),
                 "qwenimage_edit": ("qwenimage", "edit", "qwenimage_edit")}
# The samplers diffusers' flow-matching img2img pipelines (SD 3.x, FLUX.1, FLUX.2, ...) run.
FLOW_SAMPLER_NAMES = ("Euler", "Euler a", "LCM")
# Where a prompt wants the photo's caption, and what writes it unless the recipe names a
# captioner (BSD-3-Clause).
CAPTION_TOKEN = "{caption}"
DEFAULT_CAPTIONER = "Salesforce/blip-image-captioning-base"
# The depth estimator a "depth" ControlNet preprocessor uses unless the recipe names one
# (A1111's depth_anything_v2; Apache-2.0, 25 M parameters, fast enough for a CPU).
DEFAULT_DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
# working_size bounds (pixels per side of the pixel budget): below 256 the SD models draw noise;
# 4096 (16 MP per call) is far past any model's training size and a GPU's memory.
WORKING_SIZE_MIN, WORKING_SIZE_MAX = 256, 4096
# An ip_adapter model naming no adapter: the photo model reads the reference photo itself
# (FLUX.2 [klein]'s reference-image input, ComfyUI's ReferenceLatent).
NATIVE_REFERENCE = "native"


@dataclass(frozen=True)
class LoraSettings:
    """One LoRA: a .safetensors file, a folder or a hub id, and its weight."""

    path: str
    weight: float = 1.0


@dataclass(frozen=True)
class EmbeddingSettings:
    """A textual-inversion embedding (A1111's "embeddings"): a .safetensors file, and the word
    that calls it up in a prompt or negative prompt."""

    path: str
    token: str


@dataclass(frozen=True)
class IPAdapterSettings:
    """An IP-Adapter (folder laid out like the hub's, a file, or a hub id), its scale and
    reference photo, or several photos that condition together (a look shared by a set)."""

    model: str
    scale: float = 0.6
    reference: str | tuple[str, ...] = ""
    subfolder: str | None = None
    weight_name: str | None = None
    # Set when the recipe loads: a new reference photo makes earlier outputs stale.
    reference_sha256: str | None = None

    def __post_init__(self):
        if self.native:
            # No adapter file is read: a subfolder or weight name merged in from another
            # family's table would be recorded as if it had been.
            object.__setattr__(self, "subfolder", None)
            object.__setattr__(self, "weight_name", None)

    @property
    def native(self) -> bool:
        """Whether the model reads the reference itself (``model = "native"``), no adapter."""
        return self.model == NATIVE_REFERENCE

    @property
    def references(self) -> tuple[str, ...]:
        """The reference photos, one or several (none: empty)."""
        if isinstance(self.reference, (list, tuple)):
            return tuple(self.reference)
        return (self.reference,) if self.reference else ()


@dataclass(frozen=True)
class ControlNetSettings:
    """A ControlNet and what its control image is computed with."""

    model: str
    preprocessor: str = "canny"
    scale: float = 1.0
    # The preprocessor's own model (a depth estimator for "depth": a transformers folder or a
    # hub id); None: DEFAULT_DEPTH_MODEL.
    preprocessor_model: str | None = None
    # A1111's "Starting/Ending Control Step": the part of the denoising (0-1) it steers.
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    # The condition type a Union ControlNet reads (a name of UNION_MODE_NAMES or the model's
    # own index); None: the one its preprocessor makes (PREPROCESSOR_MODES).
    mode: str | int | None = None

    @property
    def union_mode(self) -> str | int:
        """The condition type this unit asks a Union ControlNet for (the recipe's, else the
        one its preprocessor makes)."""
        return self.mode if self.mode is not None else PREPROCESSOR_MODES[self.preprocessor]

    @property
    def estimator(self) -> str | None:
        """The depth estimator this ControlNet's preprocessor runs, or None (canny, none)."""
        if self.preprocessor != "depth":
            return None
        return self.preprocessor_model or DEFAULT_DEPTH_MODEL


# FreeU's published settings per family (its authors' table, which diffusers' docs point to).
FREEU_DEFAULTS = {
    "sd1": {"s1": 0.9, "s2": 0.2, "b1": 1.5, "b2": 1.6},
    "sd2": {"s1": 0.9, "s2": 0.2, "b1": 1.4, "b2": 1.6},
    "sdxl": {"s1": 0.9, "s2": 0.2, "b1": 1.3, "b2": 1.4},
}


@dataclass(frozen=True)
class FreeUSettings:
    """FreeU (ComfyUI's FreeU node, Forge's built-in): the UNet's backbone features scaled by
    b1/b2 and its skip features by s1/s2; a value left out is the model family's published one."""

    s1: float | None = None
    s2: float | None = None
    b1: float | None = None
    b2: float | None = None

    def values(self, family: str) -> dict[str, float]:
        """The four factors for a model of ``family`` ("sd1", "sd2", "sdxl")."""
        defaults = FREEU_DEFAULTS.get(family, FREEU_DEFAULTS["sd1"])
        return {key: defaults[key] if getattr(self, key) is None else getattr(self, key)
                for key in ("s1", "s2", "b1", "b2")}


@dataclass(frozen=True)
class PAGSettings:
    """Perturbed-attention guidance (ComfyUI's node, Forge's built-in): each step also runs the
    UNet with the self-attention of ``layers`` made an identity, and steers away from that."""

    scale: float = 3.0
    adaptive_scale: float = 0.0
    layers: tuple[str, ...] = ("mid",)


@dataclass(frozen=True)
class RefinerSettings:
    """A second SDXL model that takes over the last part of the denoising (A1111's Refiner):
    ``switch_at`` is the fraction of the steps the recipe runs after which it takes over."""

    model: str
    switch_at: float = 0.8


def wants_caption(recipe) -> bool:
    """True when a prompt of ``recipe`` (a recipe or run settings) has ``{caption}`` to fill in."""
    return CAPTION_TOKEN in recipe.prompt or CAPTION_TOKEN in (recipe.negative_prompt or "")


def family_overrides(family: tuple, name: str, ip_adapter=None) -> dict[str, Any]:
    """The fields a recipe's ``family`` tables ((name, ((field, value), ...)), ...) set for the
    model family ``name`` (none: an empty dict; "kontext", "fill": flux's table, then their own), as
    keyword arguments for ``replace``: an ``ip_adapter`` table is merged into ``ip_adapter``,
    the recipe's own (its reference kept)."""
    import dataclasses

    tables = dict(family)
    overrides = {}
    for each in _TABLE_CHAINS.get(name, (name,)):
        table = dict(tables.get(each, ()))
        if "ip_adapter" in table:
            changes = dict(table.pop("ip_adapter"))
            if ip_adapter is not None:
                ip_adapter = overrides["ip_adapter"] = dataclasses.replace(ip_adapter, **changes)
        overrides.update(table)
    return overrides


def frozen_family(value) -> tuple:
    """``[family.NAME]`` tables as a hashable, ordered tuple (already one: as it is); an
    ``ip_adapter`` table in one becomes ordered (field, value) pairs too."""
    if isinstance(value, tuple):
        return value

    def frozen(key, item):
        return tuple(sorted(dict(item).items())) if key == "ip_adapter" else item

    return tuple(sorted((name, tuple(sorted((k, frozen(k, v)) for k, v in dict(table).items())))
                        for name, table in dict(value).items()))


def check_family_ip_adapter(value) -> str | None:
    """Check a ``[family.NAME.ip_adapter]`` table: the adapter that family runs (model,
    subfolder, weight_name) and its scale; the reference photo stays the recipe's."""
    return _table_problem(value, {k: _IP_ADAPTER[k] for k in ("model", "scale", "subfolder",
                                                               "weight_name")}, None)


def schedule_problem(sampler: str, schedule: str) -> str | None:
    """Why ``schedule`` cannot go with ``sampler`` (the rest of a sentence starting with the
    field's name), or None when it can."""
    if schedule not in SCHEDULES:
        return f"must be one of {', '.join(map(repr, SCHEDULES))}; got {schedule!r}"
    if schedule == "Automatic":
        return None
    if "Karras" in sampler and schedule != "Karras":
        return (f"{schedule!r} does not go with sampler {sampler!r}, which names its own schedule; "
                f"use sampler {sampler.replace(' Karras', '')!r} with it")
    if schedule in SIGMA_SCHEDULES and sampler in FIXED_SIGMA_SAMPLERS:
        return (f"{schedule!r} does not apply to sampler {sampler!r} (its diffusers scheduler has no "
                f"such option); every sampler but {', '.join(FIXED_SIGMA_SAMPLERS)} takes it")
    return None


def _in_range(lo: float, hi: float):
    def check(v):
        return None if lo <= v <= hi else f"must be in [{lo}, {hi}], got {v!r}"

    return check


def _one_of(options):
    def check(v):
        return None if v in options else (f"must be one of {', '.join(map(repr, options))}; "
                                          f"got {v!r}{did_you_mean(v, options)}")

    return check


_IP_ADAPTER = {
    "model": ((str,), None),
    "scale": ((float, int), _in_range(0.0, 2.0)),
    "reference": ((str, list), lambda v: None if isinstance(v, str) or (
        v and all(isinstance(x, str) and x.strip() for x in v))
        else f"must be a photo's path or a list of them, got {v!r}"),
    "subfolder": ((str,), None),
    "weight_name": ((str,), None),
}
_CONTROLNET = {
    "model": ((str,), None),
    "preprocessor": ((str,), _one_of(CONTROLNET_PREPROCESSORS)),
    "scale": ((float, int), _in_range(0.0, 2.0)),
    "preprocessor_model": ((str,), lambda v: None if v.strip() else "must not be empty"),
    "guidance_start": ((float, int), _in_range(0.0, 1.0)),
    "guidance_end": ((float, int), _in_range(0.0, 1.0)),
    "mode": ((str, int), lambda v: None if (v in UNION_MODE_NAMES if isinstance(v, str) else 0 <= v < 16)
             else f"must be a Union ControlNet's condition type ({', '.join(UNION_MODE_NAMES)}) "
                  f"or its index 0-15, got {v!r}"),
}
# Later ControlNet fields, left out of a recipe's parameters (and fingerprint) at these values.
CONTROLNET_COUNTED_WHEN_SET = {"preprocessor_model": None, "guidance_start": 0.0, "guidance_end": 1.0,
                               "mode": None}
_REFINER = {
    "model": ((str,), None),
    "switch_at": ((float, int), lambda v: None if 0 < v < 1 else f"must be between 0 and 1 "
                                                                 f"(exclusive), got {v!r}"),
}
_PAG = {
    "scale": ((float, int), _in_range(0.0, 20.0)),
    "adaptive_scale": ((float, int), _in_range(0.0, 1.0)),
    "layers": ((list,), lambda v: None if v and all(isinstance(x, str) and x.strip() for x in v)
               else f"must be a list of layer names such as [\"mid\", \"up.block_0\"], got {v!r}"),
}
_FREEU = {key: ((float, int), _in_range(0.0, 4.0)) for key in ("s1", "s2", "b1", "b2")}
# The fields of each single-table setting, with their checks.
TABLE_FIELDS = {"ip_adapter": _IP_ADAPTER, "controlnet": _CONTROLNET, "refiner": _REFINER,
                "pag": _PAG, "freeu": _FREEU}
_LORA = {
    "path": ((str,), None),
    "weight": ((float, int), _in_range(-4.0, 4.0)),
}


_EMBEDDING = {
    "path": ((str,), None),
    "token": ((str,), lambda v: None if v.strip() and not any(c.isspace() for c in v)
              else f"must be one word, got {v!r}"),
}


def _table_problem(table: Mapping[str, Any], spec, required: str | None) -> str | None:
    for key, value in table.items():
        if key not in spec:
            return (f"has an unknown field {key!r}{did_you_mean(key, spec)} "
                    f"(allowed: {', '.join(sorted(spec))})")
        types, check = spec[key]
        if isinstance(value, bool) or not isinstance(value, types):
            want = " or ".join(t.__name__ for t in types)
            return f"{key} must be a {want}, got {value!r}"
        problem = check(value) if check else None
        if problem:
            return f"{key} {problem}"
    if required and not str(table.get(required, "")).strip():
        return f"needs {required} = \"...\" (a local path or a hub id)"
    return None


def table_field_problem(table: str, key: str, value) -> str | None:
    """What is wrong with ``value`` for field ``key`` of a recipe's ``[table]`` (ip_adapter,
    controlnet, refiner, pag, freeu) or of one of its ``loras``, or None when it is fine."""
    return _table_problem({key: value}, _LORA if table == "loras" else TABLE_FIELDS[table], None)


def _switch_problem(value, spec) -> str | None:
    """Check a field that is ``true`` (the defaults) or a table of optional settings."""
    if isinstance(value, bool):
        return None if value else "must be true or a table (leave it out for none)"
    return _table_problem(value, spec, None)


def check_ip_adapter(value) -> str | None:
    """Check an ``[ip_adapter]`` table."""
    return _table_problem(value, _IP_ADAPTER, "model")


def check_controlnet(value) -> str | None:
    """Check ``controlnet``: one table, or a list of them (A1111's ControlNet units, all applied
    together: depth and canny, say)."""
    if isinstance(value, Mapping):
        return _controlnet_problem(value)
    if not value:
        return "needs at least one table (or leave controlnet out)"
    for n, entry in enumerate(value, start=1):
        if not isinstance(entry, Mapping):
            return f"entry {n} must be a table {{model = \"...\", preprocessor = \"canny\"}}, got {entry!r}"
        problem = _controlnet_problem(entry)
        if problem:
            return f"entry {n} {problem}"
    return None


def _controlnet_problem(value: Mapping[str, Any]) -> str | None:
    problem = _table_problem(value, _CONTROLNET, "model")
    if not problem and "preprocessor_model" in value and value.get("preprocessor", "canny") != "depth":
        problem = ("preprocessor_model is the depth estimator of preprocessor = \"depth\"; "
                   f"preprocessor {value.get('preprocessor', 'canny')!r} takes none")
    if not problem and value.get("guidance_start", 0.0) >= value.get("guidance_end", 1.0):
        problem = (f"guidance_start ({value.get('guidance_start', 0.0)}) must come before "
                   f"guidance_end ({value.get('guidance_end', 1.0)})")
    return problem


def check_refiner(value) -> str | None:
    """Check a ``[refiner]`` table."""
    return _table_problem(value, _REFINER, "model")


def check_freeu(value) -> str | None:
    """Check ``freeu``: true, or a table of s1, s2, b1, b2 (each optional)."""
    return _switch_problem(value, _FREEU)


def check_pag(value) -> str | None:
    """Check ``pag``: true, or a table of scale, adaptive_scale and layers (each optional)."""
    return _switch_problem(value, _PAG)


def as_pag(value) -> PAGSettings | None:
    """``true``, a checked table (or settings, or None) as PAGSettings."""
    if value is None or value is False or isinstance(value, PAGSettings):
        return value or None
    if value is True:
        return PAGSettings()
    table = dict(value)
    for key in ("scale", "adaptive_scale"):
        if key in table:
            table[key] = float(table[key])
    if "layers" in table:
        table["layers"] = tuple(table["layers"])
    return PAGSettings(**table)


def as_freeu(value) -> FreeUSettings | None:
    """``true``, a checked table (or settings, or None) as FreeUSettings."""
    if value is None or value is False or isinstance(value, FreeUSettings):
        return value or None
    if value is True:
        return FreeUSettings()
    return FreeUSettings(**{key: float(entry) for key, entry in dict(value).items() if entry is not None})


def as_refiner(value) -> RefinerSettings | None:
    """A checked table (or settings, or None) as RefinerSettings."""
    if value is None or isinstance(value, RefinerSettings):
        return value
    table = dict(value)
    if "switch_at" in table:
        table["switch_at"] = float(table["switch_at"])
    return RefinerSettings(**table)


def check_loras(value) -> str | None:
    """Check ``loras``: a list of ``{path, weight}`` tables (or plain paths)."""
    for n, entry in enumerate(value, start=1):
        if isinstance(entry, str):
            entry = {"path": entry}
        if not isinstance(entry, Mapping):
            return f"entry {n} must be a table {{path = \"...\", weight = 0.8}}, got {entry!r}"
        problem = _table_problem(entry, _LORA, "path")
        if problem:
            return f"entry {n} {problem}"
    return None


def check_embeddings(value) -> str | None:
    """Check ``embeddings``: a list of ``{path, token}`` tables, each token once."""
    seen = set()
    for n, entry in enumerate(value, start=1):
        if not isinstance(entry, Mapping):
            return f"entry {n} must be a table {{path = \"...\", token = \"...\"}}, got {entry!r}"
        problem = _table_problem(entry, _EMBEDDING, "path")
        if not problem and "token" not in entry:
            problem = "needs token = \"...\" (the word that calls it up in a prompt)"
        if problem:
            return f"entry {n} {problem}"
        if entry["token"] in seen:
            return f"entry {n} token {entry['token']!r} is used twice"
        seen.add(entry["token"])
    return None


def as_embeddings(value) -> tuple[EmbeddingSettings, ...]:
    """A checked list (or tuple of settings) as a tuple of EmbeddingSettings."""
    return tuple(entry if isinstance(entry, EmbeddingSettings)
                 else EmbeddingSettings(str(entry["path"]), str(entry["token"]))
                 for entry in value or ())


def _as_settings(value, cls):
    if value is None or isinstance(value, cls):
        return value
    table = dict(value)
    for key in ("scale", "guidance_start", "guidance_end"):
        if key in table:
            table[key] = float(table[key])  # TOML's 1 is an int; these are floats
    if isinstance(table.get("reference"), list):
        table["reference"] = tuple(table["reference"])
    return cls(**table)


def as_ip_adapter(value) -> IPAdapterSettings | None:
    """A checked table (or settings, or None) as IPAdapterSettings."""
    return _as_settings(value, IPAdapterSettings)


def as_controlnet(value) -> ControlNetSettings | tuple[ControlNetSettings, ...] | None:
    """A checked table (or settings, or None) as ControlNetSettings; a list as a tuple of them."""
    if isinstance(value, (list, tuple)):
        return tuple(_as_settings(entry, ControlNetSettings) for entry in value)
    return _as_settings(value, ControlNetSettings)


def controlnet_units(value) -> tuple[ControlNetSettings, ...]:
    """Every ControlNet a recipe's ``controlnet`` names (none, one, or a list), in order."""
    value = as_controlnet(value)
    if value is None:
        return ()
    return value if isinstance(value, tuple) else (value,)


def as_loras(value) -> tuple[LoraSettings, ...]:
    """A checked list (or tuple of settings) as a tuple of LoraSettings."""
    out = []
    for entry in value or ():
        if isinstance(entry, LoraSettings):
            out.append(entry)
        elif isinstance(entry, str):
            out.append(LoraSettings(entry))
        else:
            out.append(LoraSettings(str(entry["path"]), float(entry.get("weight", 1.0))))
    return tuple(out)
