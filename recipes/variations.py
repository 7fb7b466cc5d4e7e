"""Variations of a recipe for side-by-side comparison (A1111's X/Y plot): the same recipe with one
or two fields set to each of a few values, each variation checked as strictly as a recipe file.

``strength=0.2,0.3,0.4`` names a field and its values; a field is a recipe field (``cfg``), an
output field (``output.quality``), a field of a recipe's table (``ip_adapter.scale``,
``controlnet.scale``, ``pag.scale``, ``freeu.b1``, ``refiner.switch_at``) or the weight of one
of its LoRAs (``loras.1.weight``, numbered from 1; ``lora.weight`` when it has one); ``freeu``
and ``pag`` can be switched (``freeu=true,false``). A1111's "Prompt S/R" is ``prompt/golden
hour=golden hour,blue hour,night``: each value replaces the words after the slash in both
prompts (the first value is usually those words, the recipe as it is). Values are written as in
TOML (``0.3``, ``true``, ``"DPM++ 2M"``); a bare word is a string (``sampler=Euler a,DDIM``).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import tomllib
from dataclasses import dataclass
from typing import Any, Mapping

from photobatch.recipes.runner_fields import TABLE_FIELDS, table_field_problem
from photobatch.recipes.schema import Recipe, RecipeError, check_fields, field_types

# Recipe fields that are not one value (lists and tables) or that name the recipe.
_NOT_VARIED = {"name", "description", "loras", "embeddings", "post", "ip_adapter", "controlnet",
               "refiner"}
# Switches that a recipe file turns off by leaving them out: here "false" does.
_SWITCHES = {"freeu", "pag"}
MAX_VARIATIONS = 64
_VARIATION_NAME = re.compile(r"^\S.* \[[^=\]]+=.*\]$")


@dataclass(frozen=True)
class Axis:
    """A field and the values to try it at, in order."""

    field: str
    values: tuple[Any, ...]


def parse_axis(text: str) -> Axis:
    """``field=v1,v2,...`` as an Axis; a ValueError saying what is wrong with it."""
    field, sep, values = text.partition("=")
    field = field.strip()
    if not sep or not field or not values.strip():
        raise ValueError(f"--vary {text!r}: write FIELD=VALUE,VALUE,... (e.g. strength=0.2,0.3)")
    try:
        parsed = tuple(tomllib.loads(f"v = [{values}]")["v"])
    except tomllib.TOMLDecodeError:
        parsed = tuple(_value(item.strip()) for item in values.split(","))
    if any(v == "" for v in parsed):
        raise ValueError(f"--vary {text!r}: an empty value")
    if len(set(map(repr, parsed))) != len(parsed):
        raise ValueError(f"--vary {text!r}: a value is given twice")
    return Axis(field, parsed)


def parse_setting(text: str) -> tuple[str, Any]:
    """``field=value`` as (field, value), the value read as in TOML (a bare word is text)."""
    field, sep, value = text.partition("=")
    if not sep or not field.strip() or not value.strip():
        raise ValueError(f"--set {text!r}: write FIELD=VALUE (e.g. strength=0.25)")
    return field.strip(), _value(value.strip())


def combinations(axes: list[Axis]) -> list[dict[str, Any]]:
    """Every combination of the axes' values (the first axis slowest), as {field: value}."""
    fields = [axis.field for axis in axes]
    if len(set(fields)) != len(fields):
        raise ValueError("each field can be varied once")
    combos = [dict(zip(fields, values)) for values in itertools.product(*(a.values for a in axes))]
    if len(combos) > MAX_VARIATIONS:
        raise ValueError(f"{len(combos)} variations is more than {MAX_VARIATIONS}: try fewer values")
    return combos


def vary(recipe: Recipe, changes: Mapping[str, Any], name: str | None = None) -> Recipe:
    """``recipe`` with ``changes`` ({field: value}) applied and checked, named ``name``."""
    label = f"recipe {recipe.name!r}"
    top: dict[str, Any] = {}
    output: dict[str, Any] = {}
    tables: dict[str, Any] = {}
    for field, value in changes.items():
        if isinstance(value, int) and not isinstance(value, bool) and _wants_float(field):
            value = float(value)
        if field.startswith("prompt/"):
            top.update(_replaced_in_prompts(recipe, top, field[len("prompt/"):], value, label))
        elif field.startswith("output."):
            output.update(check_fields(label, {field[7:]: value}, output=True))
        elif field.startswith(("loras.", "lora.")):
            tables["loras"] = _vary_lora(recipe, tables.get("loras"), field, value, label)
        elif "." in field:
            table, _, key = field.partition(".")
            tables[table] = _vary_table(recipe, tables.get(table), table, key, value, label)
        elif field in _SWITCHES and value is False:
            top[field] = None
        elif field_types(field) and field not in _NOT_VARIED:
            top.update(check_fields(label, {field: value}))
        else:
            raise RecipeError(f"{label}: {field!r} cannot be varied (try a field such as strength, "
                              "cfg, steps, sampler, seed, model, output.quality, ip_adapter.scale)")
    if output:
        top["output"] = dataclasses.replace(recipe.output, **output)
    try:
        varied = dataclasses.replace(recipe, **top, **tables, name=name or recipe.name)
    except RecipeError as exc:
        raise RecipeError(f"{label}: {exc}") from None
    if varied.denoising_steps < 1:
        raise RecipeError(f"{label} with {variation_label(changes)}: steps x strength must give at "
                          f"least one denoising step, got {varied.steps} x {varied.strength:g}")
    return varied


def variation_name(recipe_name: str, changes: Mapping[str, Any]) -> str:
    """The name a variation's runs are catalogued under: ``color-correct [strength=0.3]``."""
    return f"{recipe_name} [{variation_label(changes)}]"


def is_variation_name(name: str) -> bool:
    """True for a name ``variation_name`` makes (no recipe file is called that)."""
    return bool(_VARIATION_NAME.match(name))


def variation_label(changes: Mapping[str, Any]) -> str:
    """``strength=0.3, cfg=6`` for a set of changes."""
    return ", ".join(f"{field}={show_value(value)}" for field, value in changes.items())


def _vary_table(recipe: Recipe, current, table: str, key: str, value, label: str):
    spec = TABLE_FIELDS.get(table)
    if spec is None:
        raise RecipeError(f"{label}: {table}.{key} cannot be varied (tables that can: "
                          f"{', '.join(sorted(TABLE_FIELDS))})")
    settings = current if current is not None else getattr(recipe, table)
    if settings is None:
        raise RecipeError(f"{label} has no [{table}] whose {key} could be varied")
    if isinstance(settings, tuple):
        raise RecipeError(f"{label} has {len(settings)} ControlNets: {table}.{key} would not say "
                          "which one (vary a recipe with one)")
    if key not in spec or key not in {f.name for f in dataclasses.fields(settings)}:
        raise RecipeError(f"{label}: {table} has no field {key!r} that can be varied "
                          f"(fields: {', '.join(sorted(spec))})")
    problem = table_field_problem(table, key, value)
    if problem:
        raise RecipeError(f"{label}: {table}.{problem}")
    if isinstance(value, list):
        value = tuple(value)
    return dataclasses.replace(settings, **{key: value})


def _replaced_in_prompts(recipe: Recipe, top: dict, search: str, value, label: str) -> dict:
    """Both prompts with ``search`` replaced by ``value`` (A1111's Prompt S/R)."""
    if not search:
        raise RecipeError(f"{label}: prompt/ needs the words to replace, e.g. prompt/winter=...")
    if not isinstance(value, str):
        value = show_value(value)
    prompt = top.get("prompt", recipe.prompt)
    negative = top.get("negative_prompt", recipe.negative_prompt)
    if search not in prompt and search not in negative:
        raise RecipeError(f"{label}: neither prompt says {search!r}, so prompt/{search} would "
                          "change nothing")
    return {"prompt": prompt.replace(search, value),
            "negative_prompt": negative.replace(search, value)}


def _vary_lora(recipe: Recipe, current, field: str, value, label: str):
    """``recipe``'s LoRAs with one weight changed (A1111's X/Y over a LoRA's strength)."""
    loras = list(current if current is not None else recipe.loras)
    parts = field.split(".")
    if parts[0] == "lora" and len(parts) == 2:
        if len(loras) != 1:
            raise RecipeError(f"{label} has {len(loras)} LoRAs: say which, as loras.N.weight "
                              "(numbered from 1)")
        number, key = 1, parts[1]
    elif len(parts) == 3 and parts[1].isdigit():
        number, key = int(parts[1]), parts[2]
    else:
        raise RecipeError(f"{label}: {field!r} cannot be varied (write loras.N.weight)")
    if not 1 <= number <= len(loras):
        raise RecipeError(f"{label} has {len(loras)} LoRA(s): there is no loras.{number}")
    if key != "weight":
        raise RecipeError(f"{label}: a LoRA's weight can be varied, not its {key}")
    problem = table_field_problem("loras", "weight", value)
    if problem:
        raise RecipeError(f"{label}: loras.{number}.{problem}")
    loras[number - 1] = dataclasses.replace(loras[number - 1], weight=float(value))
    return tuple(loras)


def _wants_float(field: str) -> bool:
    table, _, key = field.rpartition(".")
    if table == "output":
        types = field_types(key, output=True)
    elif table:
        types = TABLE_FIELDS.get(table, {}).get(key, (None,))[0]
    else:
        types = field_types(key)
    return bool(types) and float in types


def _value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word: a string (a sampler's name, a model's path)


def show_value(value: Any) -> str:
    """A value as a person (and ``--set``) reads it: ``0.3``, ``true``, ``Euler a``."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
