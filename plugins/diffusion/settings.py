"""The runner's view of a recipe: every runner parameter with its default, validated up front.

Recipes are validated when loaded; this re-checks what would crash diffusers so a runner used
directly (a plugin, the benchmark) fails with the same clear message, and reads optional
fields with defaults so recipes from older or third-party schemas still run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from photobatch.plugins.diffusion.params import validate_params
from photobatch.recipes.runner_fields import (
    CONTROLNET_PREPROCESSORS,
    WORKING_SIZE_MAX,
    WORKING_SIZE_MIN,
    ControlNetSettings,
    EmbeddingSettings,
    IPAdapterSettings,
    FreeUSettings,
    LoraSettings,
    PAGSettings,
    RefinerSettings,
    as_embeddings,
    as_ip_adapter,
    as_loras,
    as_freeu,
    as_pag,
    as_refiner,
    controlnet_units,
    family_overrides,
    frozen_family,
    schedule_problem,
)


# One set of sub-table types for the recipe schema and the runner (aliases keep the runner's names).
LoraSpec = LoraSettings
IPAdapterSpec = IPAdapterSettings
ControlNetSpec = ControlNetSettings


@dataclass(frozen=True)
class RunSettings:
    """Everything a runner needs from a recipe."""

    prompt: str = ""
    negative_prompt: str = ""
    strength: float = 0.2
    steps: int = 30
    cfg: float = 6.0
    true_cfg: float = 1.0  # FLUX.1's true classifier-free guidance (diffusers' true_cfg_scale)
    sampler: str = "DPM++ 2M"
    schedule: str = "Automatic"  # A1111's Schedule type
    clip_skip: int = 1  # A1111 numbering: 1 = the text encoder's last layer
    vae: str | None = None  # a VAE of the recipe's own (A1111's "SD VAE")
    exact_steps: bool = False
    working_size: int | None = None  # about working_size² pixels; None: the model's native
    captioner: str | None = None  # fills "{caption}" in the prompts; None: DEFAULT_CAPTIONER
    captioned: bool = field(default=False, compare=False)  # the prompts have their caption in
    full_resolution: str = "resize"
    color_match: bool = False
    mask_blur: int = 4
    mask_padding: int = 32
    only_masked: bool = True
    batch: int = 1
    tile_overlap: int = 64
    model_config: str | None = None
    loras: tuple[LoraSpec, ...] = ()
    embeddings: tuple[EmbeddingSettings, ...] = ()
    ip_adapter: IPAdapterSpec | None = None
    controlnets: tuple[ControlNetSpec, ...] = ()  # applied together (A1111's units)
    refiner: RefinerSettings | None = None  # A1111's Refiner: an SDXL model for the last steps
    freeu: FreeUSettings | None = None
    pag: PAGSettings | None = None
    family: tuple = ()  # the recipe's [family.NAME] tables, until for_family applies one
    base_dir: Path | None = field(default=None, compare=False)

    def for_family(self, name: str) -> "RunSettings":
        """These settings as they run on a model of family ``name``: its table applied (a
        recipe that reaches the runner without its model's family resolved, such as a hub id
        first downloaded now), checked again."""
        if not self.family:
            return self
        from dataclasses import replace

        resolved = replace(self, **family_overrides(self.family, name, self.ip_adapter), family=())
        _validate(resolved)
        return resolved

    def resolve_path(self, value: str) -> str:
        """A path relative to the recipe's folder becomes absolute; hub ids and absolute paths stay."""
        path = Path(value).expanduser()
        if path.is_absolute() or self.base_dir is None:
            return str(path) if path.exists() else value
        candidate = self.base_dir / path
        return str(candidate) if candidate.exists() else value


def settings_from_recipe(recipe) -> RunSettings:
    """Read a recipe (any object with the usual attributes) into validated RunSettings."""
    get = lambda name, default: _plain(getattr(recipe, name, default), default)  # noqa: E731
    source = getattr(recipe, "source", "") or ""
    settings = RunSettings(
        prompt=get("prompt", ""),
        negative_prompt=get("negative_prompt", ""),
        strength=float(get("strength", 0.2)),
        steps=int(get("steps", 30)),
        cfg=float(get("cfg", 6.0)),
        true_cfg=float(get("true_cfg", 1.0)),
        sampler=get("sampler", "DPM++ 2M"),
        schedule=get("schedule", "Automatic"),
        clip_skip=int(get("clip_skip", 1)),
        vae=get("vae", None) or None,
        exact_steps=bool(get("exact_steps", False)),
        working_size=_optional_int(get("working_size", None)),
        captioner=get("captioner", None) or None,
        full_resolution=get("full_resolution", "resize"),
        color_match=bool(get("color_match", False)),
        mask_blur=int(get("mask_blur", 4)),
        mask_padding=int(get("mask_padding", 32)),
        only_masked=bool(get("only_masked", True)),
        batch=int(get("batch", 1)),
        tile_overlap=int(get("tile_overlap", 64)),
        model_config=get("model_config", None),
        loras=tuple(_lora(x) for x in (get("loras", ()) or ())),
        embeddings=as_embeddings(get("embeddings", ()) or ()),
        ip_adapter=_ip_adapter(get("ip_adapter", None)),
        controlnets=_controlnets(get("controlnet", None)),
        refiner=as_refiner(get("refiner", None) or None),
        freeu=as_freeu(get("freeu", None)),
        pag=as_pag(get("pag", None)),
        family=frozen_family(get("family", ()) or ()),
        base_dir=Path(source).parent if source else None,
    )
    _validate(settings)
    return settings


def _validate(settings: RunSettings) -> None:
    validate_params(settings.strength, settings.steps, settings.cfg, settings.sampler,
                    settings.exact_steps, settings.full_resolution)
    problem = schedule_problem(settings.sampler, settings.schedule)
    if problem:
        raise ValueError(f"schedule {problem}")
    if settings.clip_skip < 1:
        raise ValueError(f"clip_skip must be at least 1 (A1111's numbering), got {settings.clip_skip!r}")
    if settings.working_size is not None and not (
            WORKING_SIZE_MIN <= settings.working_size <= WORKING_SIZE_MAX):
        raise ValueError(f"working_size must be in [{WORKING_SIZE_MIN}, {WORKING_SIZE_MAX}] pixels, "
                         f"got {settings.working_size!r}")
    if settings.batch < 1:
        raise ValueError(f"batch must be at least 1, got {settings.batch!r}")
    if settings.mask_blur < 0:
        raise ValueError(f"mask_blur must be >= 0, got {settings.mask_blur!r}")
    if settings.mask_padding < 0:
        raise ValueError(f"mask_padding must be >= 0, got {settings.mask_padding!r}")


def _plain(value, default):
    # Recipe sub-tables may arrive as dataclasses (the schema) or dicts (a plugin's recipe).
    if value is None:
        return default if default is not None else None
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v, None) for v in value]
    return value


def _optional_int(value) -> int | None:
    return None if value is None else int(value)


def _lora(entry) -> LoraSpec:
    return as_loras([entry])[0]


def _ip_adapter(table) -> IPAdapterSpec | None:
    return as_ip_adapter(table) if table else None


def _controlnets(value) -> tuple[ControlNetSpec, ...]:
    units = controlnet_units(value or None)
    for spec in units:
        if spec.preprocessor not in CONTROLNET_PREPROCESSORS:
            raise ValueError(f"controlnet preprocessor must be one of "
                             f"{', '.join(map(repr, CONTROLNET_PREPROCESSORS))}; got {spec.preprocessor!r}")
    return units
