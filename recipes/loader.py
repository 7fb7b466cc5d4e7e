"""Load recipes from TOML files and folders into a name-keyed book."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Iterable

from photobatch.recipes.schema import Recipe, RecipeError, recipe_from_dict

BUILTIN_DIR = Path(__file__).resolve().parent


def load_recipe_file(path: Path) -> Recipe:
    """Parse and validate one recipe file; the file's stem is the default name."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"recipe file {path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise RecipeError(f"recipe file {path}: cannot be read ({exc.strerror})") from None
    return recipe_from_dict(data, source=str(path), default_name=path.stem)


def load_recipes(folders: Iterable[Path]) -> dict[str, Recipe]:
    """Load every ``*.toml`` in the folders; a name defined twice is an error naming both files."""
    book: dict[str, Recipe] = {}
    for folder in folders:
        for path in sorted(Path(folder).glob("*.toml")):
            recipe = load_recipe_file(path)
            if recipe.name in book:
                raise RecipeError(
                    f"recipe {recipe.name!r} is defined twice: {book[recipe.name].source} and {path}"
                )
            book[recipe.name] = recipe
    return book
