"""Built-in plugin: the recipes that ship with photobatch, as a recipe folder like any other."""

from photobatch.plugins import hookimpl
from photobatch.recipes.loader import BUILTIN_DIR


@hookimpl
def photobatch_recipe_dirs():
    """The package's own recipe folder."""
    return [BUILTIN_DIR]
