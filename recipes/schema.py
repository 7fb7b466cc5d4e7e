"""The recipe schema: frozen dataclasses, validation with precise messages, and a fingerprint."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

# Sampler names as A1111 users know them; the runner maps each to a diffusers scheduler.
SAMPLERS = ("Euler", "Euler a", "DPM++ 2M", "DPM++ 2M Karras", "DDIM", "UniPC", "PNDM")
OUTPUT_FORMATS = ("jpeg",)
METADATA_POLICIES = ("all", "no-location", "copyright-only", "none")
NAME_TOKENS = ("stem", "recipe", "ext")


class RecipeError(ValueError):
    """A recipe that cannot be used, with a message naming the recipe, field, value and rule."""


@dataclass(frozen=True)
class OutputSettings:
    """Where and how a recipe's output file is written."""

    format: str = "jpeg"
    quality: int = 95
    name: str = "{stem}_{recipe}"
    metadata: str = "all"


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
    sampler: str = "DPM++ 2M"
    seed: int | None = None
    output: OutputSettings = field(default_factory=OutputSettings)
    source: str = ""

    @property
    def denoising_steps(self) -> int:
        """How many denoising steps img2img really runs (diffusers and A1111: int(steps*strength))."""
        return int(self.steps * self.strength)

    def params(self) -> dict[str, Any]:
        """The output-affecting fields as plain data (what the fingerprint and catalog record)."""
        data = dataclasses.asdict(self)
        for key in ("name", "description", "source"):
            data.pop(key)
        return data

    @property
    def fingerprint(self) -> str:
        """sha256 of the normalised output-affecting fields; a change makes old outputs stale."""
        blob = json.dumps(self.params(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# field -> (python types accepted, check returning an error text or None)
def _range(lo: float, hi: float, lo_open: bool = False):
    def check(v):
        ok = (v > lo if lo_open else v >= lo) and v <= hi
        return None if ok else f"must be in {'(' if lo_open else '['}{lo}, {hi}], got {v!r}"

    return check


def _choice(options):
    def check(v):
        return None if v in options else f"must be one of {', '.join(map(repr, options))}; got {v!r}"

    return check


def _name_template(v):
    import string

    try:
        names = {f for _, f, _, _ in string.Formatter().parse(v) if f is not None}
    except ValueError as exc:
        return f"is not a valid name template ({exc}): {v!r}"
    bad = names - set(NAME_TOKENS)
    if bad:
        return f"uses unknown token(s) {', '.join(sorted(bad))}; allowed: {', '.join(NAME_TOKENS)}"
    if "stem" not in names:
        return f"must contain {{stem}} so outputs of different photos do not collide, got {v!r}"
    return None


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
    "sampler": ((str,), _choice(SAMPLERS)),
    "seed": ((int,), _range(0, 2**32 - 1)),
}
_OUTPUT_FIELDS: dict[str, tuple[tuple[type, ...], Any]] = {
    "format": ((str,), _choice(OUTPUT_FORMATS)),
    "quality": ((int,), _range(1, 100)),
    "name": ((str,), _name_template),
    "metadata": ((str,), _choice(METADATA_POLICIES)),
}


def _validate_table(label: str, table: Mapping[str, Any], spec, prefix: str = "") -> dict:
    out = {}
    for key, value in table.items():
        where = f"{prefix}{key}"
        if key not in spec:
            allowed = ", ".join(sorted(spec))
            raise RecipeError(f"{label}: unknown field {where!r} (allowed: {allowed})")
        types, check = spec[key]
        # bool is an int in Python; a recipe saying `steps = true` is a typo, not 1.
        if isinstance(value, bool) or not isinstance(value, types):
            want = " or ".join(t.__name__ for t in types)
            raise RecipeError(f"{label}: {where} must be a {want}, got {value!r}")
        problem = check(value) if check else None
        if problem:
            raise RecipeError(f"{label}: {where} {problem}")
        out[key] = float(value) if float in types else value
    return out


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
    recipe = Recipe(**fields, output=OutputSettings(**out_fields), source=source)
    if recipe.denoising_steps < 1:
        raise RecipeError(
            f"{label}: steps x strength must give at least one denoising step, got "
            f"{recipe.steps} x {recipe.strength} = {recipe.steps * recipe.strength:g} "
            f"(raise steps to at least {int(1 / recipe.strength) + 1})"
        )
    return recipe
