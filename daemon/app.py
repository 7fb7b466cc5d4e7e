"""The application object: plugin registries, recipes and the catalog, owned in one place."""

from __future__ import annotations

import os
from pathlib import Path

from photobatch.catalog.store import Catalog
from photobatch.daemon.paths import default_catalog_path
from photobatch.plugins.manager import build_plugin_manager, collect, notify
from photobatch.recipes.loader import load_recipes
from photobatch.recipes.schema import Recipe, RecipeError


class UsageError(Exception):
    """A problem the user can fix (unknown recipe, no model); shown without a traceback."""


class App:
    """Everything a command needs; no module-level state, so tests can build as many as they like."""

    def __init__(self, catalog_path: Path | None = None, recipe_dirs=(), model: str | None = None,
                 plugin_manager=None):
        self.pm = plugin_manager or build_plugin_manager()
        self.readers = collect(self.pm, "photobatch_readers", "reader")
        self.writers = collect(self.pm, "photobatch_writers", "writer")
        self.runners = collect(self.pm, "photobatch_runners", "runner")
        folders = [Path(p) for result in self.pm.hook.photobatch_recipe_dirs() for p in result]
        self.recipes = load_recipes(folders + [Path(p) for p in recipe_dirs])
        self.catalog_path = Path(catalog_path) if catalog_path else default_catalog_path()
        self.default_model = model or os.environ.get("PHOTOBATCH_MODEL")
        self._catalog: Catalog | None = None

    @property
    def catalog(self) -> Catalog:
        """The catalog, opened (and migrated) on first use."""
        if self._catalog is None:
            self._catalog = Catalog(self.catalog_path)
        return self._catalog

    def recipe(self, name: str) -> Recipe:
        """The recipe called ``name``, or a UsageError listing those that exist."""
        try:
            return self.recipes[name]
        except KeyError:
            known = ", ".join(sorted(self.recipes)) or "none"
            raise UsageError(f"no recipe called {name!r} (known: {known})") from None

    def model_for(self, recipe: Recipe) -> str:
        """The model a recipe runs on: the recipe's own, else --model / PHOTOBATCH_MODEL."""
        model = recipe.model or self.default_model
        if not model:
            raise UsageError(
                f"recipe {recipe.name!r} names no model: pass --model PATH (a diffusers folder or "
                "a hub id) or set PHOTOBATCH_MODEL"
            )
        return model

    def notify(self, event: str, **kwargs) -> None:
        """Send an event to plugin listeners (a failing listener is logged, never raised)."""
        notify(self.pm, event, **kwargs)

    def close(self) -> None:
        """Close the catalog."""
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None


__all__ = ["App", "UsageError", "RecipeError"]
