"""Example photobatch plugin: a ``frame`` step, the ``framed`` recipe that uses it, a ``frame`` command."""

from __future__ import annotations

from pathlib import Path

import click
from PIL import Image, ImageColor, ImageDraw

from photobatch.plugins import hookimpl

__version__ = "1.0.0"

RECIPES = Path(__file__).parent / "recipes"


class FrameStep:
    """Draw a solid border ``width`` pixels wide inside the picture (its size is unchanged)."""

    name = "frame"

    def apply(self, image: Image.Image, params: dict, source: Image.Image) -> Image.Image:
        """Return a framed copy of ``image``; ``source`` (the original) is not needed here."""
        width = params.get("width", 16)
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"frame width must be a whole number of pixels >= 1, got {width!r}")
        color = ImageColor.getrgb(params.get("color", "white"))
        framed = image.convert("RGB")  # a copy: never draw on the caller's image
        ImageDraw.Draw(framed).rectangle([0, 0, framed.width - 1, framed.height - 1],
                                         outline=color, width=width)
        return framed


@click.command(name="frame")
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--width", default=16, show_default=True, help="Frame width in pixels.")
@click.option("--color", default="white", show_default=True, help="Frame colour (a CSS colour).")
def frame_command(image, output, width, color):
    """Frame one picture with the frame step (no model, no catalog)."""
    with Image.open(image) as img:
        try:
            framed = FrameStep().apply(img, {"width": width, "color": color}, img)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    framed.save(output)
    click.echo(f"framed {image} -> {output}")


@hookimpl
def photobatch_steps():
    """The frame step."""
    return [FrameStep()]


@hookimpl
def photobatch_recipe_dirs():
    """The ``framed`` recipe."""
    return [RECIPES]


@hookimpl
def photobatch_post_steps(recipe):
    """Frame the outputs of our own recipe, and of no other."""
    return [("frame", {"width": 8, "color": "white"})] if recipe.name == "framed" else []


@hookimpl
def photobatch_commands():
    """``photobatch frame``."""
    return [frame_command]
