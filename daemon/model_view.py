"""The model sees sRGB; the photo keeps its own colour space.

Diffusion models learnt from sRGB pictures. A photo encoded in a wider space (a camera set to
Adobe RGB, a RAW rendered to ProPhoto) looks desaturated to them, and a colour correction
would then "fix" colours that were right. So the runner is given an sRGB view of the photo,
and what it returns is brought back into the photo's own space before the full-resolution
restore: the change is applied to the original's own pixels, so wide-gamut colours the edit
leaves alone survive, and pixels outside an inpainting mask stay exactly the source's.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from PIL import Image

from photobatch.plugins.colour import from_srgb, is_srgb, to_srgb


def model_view(image: Image.Image, icc: bytes | None) -> Image.Image:
    """``image`` as the model should see it: in sRGB (the image itself when it is already)."""
    return image if is_srgb(icc) else to_srgb(image, icc)


def result_in_source_space(result, icc: bytes):
    """A copy of a runner's ``result`` with its pictures (output and model input, both sRGB)
    converted into the photo's space ``icc``, for ``restore_full_resolution``."""
    values = dict(vars(result)) if not hasattr(result, "__dataclass_fields__") else {
        name: getattr(result, name) for name in result.__dataclass_fields__}
    values["image"] = from_srgb(result.image, icc)
    if getattr(result, "model_input", None) is not None:
        values["model_input"] = from_srgb(result.model_input, icc)
    return SimpleNamespace(**values)


def composite_in_source_space(composite: Image.Image, view: Image.Image, source: Image.Image,
                              icc: bytes) -> Image.Image:
    """A full-size sRGB ``composite`` the runner made from ``view`` (sRGB of ``source``), in
    the source's space: pixels it left as they were are the source's own, the rest converted."""
    changed = np.any(np.asarray(composite) != np.asarray(view), axis=2)
    out = np.array(source.convert("RGB"))
    converted = np.asarray(from_srgb(composite, icc))
    out[changed] = converted[changed]
    return Image.fromarray(out)
