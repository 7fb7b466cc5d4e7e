"""What a recipe's output settings mean for one photo: which writer, bit depth and options."""

from __future__ import annotations

import inspect

from typing import Any

# "lossless" is not a writer of its own: it is TIFF at the source's bit depth.
_FORMAT_WRITERS = {"lossless": "tiff"}


def writer_name(fmt: str) -> str:
    """The writer that produces output format ``fmt``."""
    return _FORMAT_WRITERS.get(fmt, fmt)


def output_bit_depth(settings: Any, writer: Any, source_bits: int) -> int:
    """Bits per channel of the output: the recipe's, else the source's as far as the writer goes.

    A recipe asking for a depth the writer cannot write is an error; left to us, a 16-bit
    source (RAW, 16-bit TIFF/PNG, 10-bit HEIF) gives 16 bits where the writer has them.
    """
    depths = tuple(getattr(writer, "bit_depths", (8,)))
    wanted = getattr(settings, "bit_depth", None)
    if wanted is not None:
        if wanted not in depths:
            raise ValueError(f"the {writer.name} writer cannot write {wanted} bits per channel")
        return wanted
    return 16 if source_bits > 8 and 16 in depths else min(depths)


def writer_options(settings: Any, writer: Any, source_bits: int) -> dict[str, Any]:
    """Keyword arguments for ``writer.write`` besides the ICC profile.

    Writers that declare ``bit_depths`` (the built-ins) also take ``bit_depth`` and
    ``progressive``; others get ``quality`` only, as the hook specification promises. A
    ``ppi`` (output.ppi, when set) goes to writers whose ``write`` has a ``ppi`` parameter.
    """
    options: dict[str, Any] = {"quality": settings.quality}
    if hasattr(writer, "bit_depths"):
        options["bit_depth"] = output_bit_depth(settings, writer, source_bits)
        options["progressive"] = bool(getattr(settings, "progressive", False))
    ppi = getattr(settings, "ppi", 0)
    if ppi and "ppi" in inspect.signature(writer.write).parameters:
        options["ppi"] = ppi  # the file's own density field (JFIF, pHYs, TIFF); EXIF gets it too
    return options


def output_problem(settings: Any, writers: Any) -> str | None:
    """Why output ``settings`` cannot be written by any of ``writers`` (the app's registry):
    no writer of that format, or a bit depth it does not write; None when they can."""
    from photobatch.recipes.suggest import did_you_mean

    name = writer_name(settings.format)
    if name not in writers:
        formats = sorted({*writers.items, *(alias for alias, target in _FORMAT_WRITERS.items()
                                            if target in writers)})
        return (f"output.format {settings.format!r} has no writer{did_you_mean(settings.format, formats)} "
                f"(known: {', '.join(formats) or 'none'}; a writer plugin can add one)")
    depths = tuple(getattr(writers.get(name), "bit_depths", (8,)))
    if settings.bit_depth is not None and settings.bit_depth not in depths:
        return (f"output.bit_depth {settings.bit_depth}: the {name} writer writes "
                f"{' or '.join(map(str, depths))} bits per channel")
    return None
