"""Types shared by readers, writers and the processing session."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image


class ReadError(Exception):
    """A file that cannot be decoded, with a one-line reason a photographer can act on."""


@dataclass
class DecodedImage:
    """Upright pixels of a photo plus what the writer needs to keep (colour profile, format)."""

    image: Image.Image  # RGB, EXIF orientation already applied
    format: str  # "jpeg", "png", ...
    icc_profile: bytes | None
    orientation: int  # the EXIF orientation the file had (1 = none)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the upright picture."""
        return self.image.size
