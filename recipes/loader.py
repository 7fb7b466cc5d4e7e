"""Load recipes from TOML files and folders into a name-keyed book, resolving ``extends``.

A recipe may say ``extends = "other"`` and override a few fields; tables (``[output]``) merge
key by key. Files whose name starts with ``_`` are bases only: usable with ``extends``, never
run on their own. A file with ``[variants.X]`` tables defines one recipe per variant, named
``name:X`` (``time-of-day:night``), and ``name`` alone for its ``default_variant``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from photobatch.recipes.schema import Recipe, RecipeError, recipe_from_dict

BUILTIN_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class RawRecipe:
    """A parsed recipe file before validation."""

    name: str
    data: dict[str, Any]
    path: Path

    @property
    def is_base(self) -> bool:
        """True for ``_name.toml`` files: only a base for ``extends``."""
        return self.path.name.startswith("_")


def read_recipe_file(path: Path) -> RawRecipe:
    """Parse one recipe file (no validation yet); the file's stem is the default name."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"recipe file {path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise RecipeError(f"recipe file {path}: cannot be read ({exc.strerror})") from None
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name.strip():
        raise RecipeError(f"recipe file {path}: name must be a non-empty string, got {name!r}")
    return RawRecipe(name, data, path)


def expand_variants(item: RawRecipe) -> list[RawRecipe]:
    """A recipe with ``[variants.X]`` tables becomes ``name:X`` recipes (and ``name`` itself
    when ``default_variant`` names one); a recipe without variants is returned as it is."""
    data = dict(item.data)
    variants = data.pop("variants", None)
    default = data.pop("default_variant", None)
    if variants is None:
        if default is not None:
            raise RecipeError(f"recipe {item.name!r} ({item.path}): default_variant needs [variants]")
        return [item]
    label = f"recipe {item.name!r} ({item.path})"
    if not isinstance(variants, dict) or not variants or not all(
            isinstance(v, dict) for v in variants.values()):
        raise RecipeError(f"{label}: variants must be tables, e.g. [variants.night]")
    if default is not None and default not in variants:
        raise RecipeError(f"{label}: default_variant {default!r} is not one of its variants "
                          f"({', '.join(variants)})")
    expanded = []
    for key, table in variants.items():
        name = f"{item.name}:{key}"
        expanded.append(RawRecipe(name, {**_merge(data, table), "name": name}, item.path))
        if key == default:
            expanded.append(RawRecipe(item.name, {**_merge(data, table), "name": item.name}, item.path))
    return expanded


def read_recipe_folders(folders: Iterable[Path]) -> dict[str, RawRecipe]:
    """Every ``*.toml`` in the folders by name; a name defined twice is an error naming both."""
    raw: dict[str, RawRecipe] = {}
    for folder in folders:
        for path in sorted(Path(folder).glob("*.toml")):
            for item in expand_variants(read_recipe_file(path)):
                if item.name in raw:
                    raise RecipeError(
                        f"recipe {item.name!r} is defined twice: {raw[item.name].path} and {path}")
                raw[item.name] = item
    return raw


def _merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def resolve(item: RawRecipe, raw: dict[str, RawRecipe], chain: tuple[str, ...] = ()) -> dict:
    """The recipe's data with every ``extends`` applied, base first."""
    data = dict(item.data)
    base_name = data.pop("extends", None)
    data["name"] = item.name
    if base_name is None:
        return data
    label = f"recipe {item.name!r} ({item.path})"
    if not isinstance(base_name, str):
        raise RecipeError(f"{label}: extends must be a recipe name, got {base_name!r}")
    if base_name in chain + (item.name,):
        cycle = " -> ".join(chain + (item.name, base_name))
        raise RecipeError(f"{label}: extends makes a cycle: {cycle}")
    base = raw.get(base_name)
    if base is None:
        known = ", ".join(sorted(raw)) or "none"
        raise RecipeError(f"{label}: extends {base_name!r}, which does not exist (known: {known})")
    inherited = resolve(base, raw, chain + (item.name,))
    if "prompt" in data:
        # A recipe that writes its own prompt means it on every model: the base's per-family
        # wordings were of the base's prompt (a [family.kontext] instruction) and would
        # silently replace it; the child's own family tables may give new ones.
        inherited = _without_family_prompts(inherited)
    # A description is about one recipe: inherit it only when the child has none.
    return _merge(inherited, data)


def _without_family_prompts(data: dict) -> dict:
    family = data.get("family")
    if not isinstance(family, dict):
        return data
    kept = {name: {k: v for k, v in table.items() if k != "prompt"} if isinstance(table, dict) else table
            for name, table in family.items()}
    return {**data, "family": {name: table for name, table in kept.items() if table != {}}}


def build_recipe(item: RawRecipe, raw: dict[str, RawRecipe]) -> Recipe:
    """Resolve and validate one recipe (a reference photo it names must be readable now)."""
    recipe = recipe_from_dict(resolve(item, raw), source=str(item.path), default_name=item.name)
    ip = recipe.ip_adapter
    if ip is not None and ip.references:
        paths, shas = [], []
        for reference in ip.references:
            path = Path(reference).expanduser()
            if not path.is_absolute():
                path = item.path.parent / path
            paths.append(str(path))
            shas.append(check_reference(path, f"recipe {item.name!r} ({item.path})"))
        if isinstance(ip.reference, tuple):
            # Several photos: one identity for the set, in its order.
            sha = hashlib.sha256("\n".join(shas).encode()).hexdigest()
            reference = tuple(paths)
        else:
            sha, reference = shas[0], paths[0]
        recipe = dataclasses.replace(recipe, ip_adapter=dataclasses.replace(
            ip, reference=reference, reference_sha256=sha))
    if recipe.output.watermark_image:
        path = Path(recipe.output.watermark_image).expanduser()
        if not path.is_absolute():
            path = item.path.parent / path
        sha = check_watermark_image(path, f"recipe {item.name!r} ({item.path})")
        recipe = dataclasses.replace(recipe, output=dataclasses.replace(
            recipe.output, watermark_image=str(path), watermark_image_sha256=sha))
    return recipe


def check_watermark_image(path: Path, label: str) -> str:
    """The sha256 of a watermark graphic, or a RecipeError saying why it cannot be used."""
    data = _read(path, f"{label}: output.watermark_image")
    _verify(path, f"{label}: output.watermark_image",
            "is not an image Pillow reads ({}); a logo is usually a PNG with transparency")
    return hashlib.sha256(data).hexdigest()


def _read(path: Path, said: str) -> bytes:
    """The bytes of a file a recipe names, or a RecipeError beginning with ``said``."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise RecipeError(f"{said} {path} cannot be read ({exc.strerror or exc})") from None


def _verify(path: Path, said: str, problem: str) -> None:
    """Refuse (RecipeError: ``said``, the path, ``problem`` with the reason) a file Pillow
    cannot take for an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise RecipeError(f"{said} {path} {problem.format(exc)}") from None


def check_reference(path: Path, label: str) -> str:
    """The sha256 of a reference photo, or a RecipeError saying why it cannot be used.

    Formats Pillow reads are verified here; a camera RAW or HEIC is taken on its first bytes
    (decoding one costs a second: the app decodes it before running the recipe)."""
    from photobatch.plugins.images import sniff

    data = _read(path, f"{label}: ip_adapter.reference")
    kind = sniff(data[:64], path)
    if kind is None:
        raise RecipeError(f"{label}: ip_adapter.reference {path} is not a photo photobatch reads "
                          "(JPEG, PNG, TIFF, WebP, HEIC/AVIF or a camera RAW)")
    if kind not in ("raw", "heif", "avif"):
        _verify(path, f"{label}: ip_adapter.reference", "is not a readable image ({})")
    return hashlib.sha256(data).hexdigest()


def load_recipes(folders: Iterable[Path]) -> dict[str, Recipe]:
    """Load, resolve and validate every recipe in the folders (bases are not in the result)."""
    raw = read_recipe_folders(folders)
    return {name: build_recipe(item, raw) for name, item in raw.items() if not item.is_base}


def load_recipe_file(path: Path, context: Iterable[Path] = ()) -> Recipe:
    """Validate one file and return its recipe (for a file with variants: the default one)."""
    item = read_recipe_file(path)
    recipes = {r.name: r for r in load_recipe_variants(path, context)}
    if item.name not in recipes:
        raise RecipeError(f"recipe {item.name!r} ({path}) has variants and no default_variant: "
                          f"use one of {', '.join(sorted(recipes))}")
    return recipes[item.name]


def load_recipe_variants(path: Path, context: Iterable[Path] = ()) -> list[Recipe]:
    """Validate one file (all its variants); ``extends`` resolves against ``context`` folders."""
    items = expand_variants(read_recipe_file(path))
    raw = {k: v for k, v in read_recipe_folders(context).items() if v.path.resolve() != Path(path).resolve()}
    raw.update({item.name: item for item in items})
    return [build_recipe(item, raw) for item in items]
