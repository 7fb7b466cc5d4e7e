"""Retouch faces: find them, inpaint each one in its own crop, composite at full size.

Each face gets a feathered elliptical mask and its own runner call ("only masked": the padded
crop is processed at the model's working size, so a small face in a 40 MP group photo still
gets the model's full resolution). Pixels outside every mask stay the original's exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from PIL import Image, ImageDraw

from photobatch.plugins.diffusion.fullres import restore_full_resolution
from photobatch.plugins.images import NothingToDo


@dataclass(frozen=True)
class FacesOutput:
    """The full-size composite of every retouched face; ``finished``: no restore step needed."""

    image: Image.Image
    model_id: str
    model_hash: str | None
    device: str
    working_size: tuple[int, int]
    faces: int
    finished: bool = True
    precision: str | None = None
    adapters_hash: str | None = None
    prompt: str | None = None  # each face's prompt as it ran, when captions filled them in
    family: str | None = None  # the model's family (engine.RunOutput.family)


def face_mask(size: tuple[int, int], box, expand: float) -> Image.Image:
    """An ellipse over the face box grown by ``expand`` (more upward: forehead and hairline)."""
    width, height = size
    grow_x, grow_y = box.w * expand / 2, box.h * expand / 2
    left, right = box.x - grow_x, box.x + box.w + grow_x
    top, bottom = box.y - grow_y * 1.4, box.y + box.h + grow_y * 0.8
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).ellipse([max(0, left), max(0, top), min(width - 1, right),
                                  min(height - 1, bottom)], fill=255)
    return mask


def run_on_faces(app, runner, image: Image.Image, recipe, seed: int, model: str) -> FacesOutput:
    """Inpaint every face ``recipe.face_detector`` finds; NothingToDo when there is none."""
    try:
        detector = app.face_detectors.get(recipe.face_detector)
    except KeyError as exc:
        raise ValueError(str(exc.args[0])) from None
    faces = detector.detect(image)
    if not faces:
        raise NothingToDo(f"no face found by {recipe.face_detector}")
    # The composite is already full size: each face is restored into it right away.
    per_face = replace(recipe, full_resolution="detail-transfer"
                       if recipe.full_resolution == "tiled" else recipe.full_resolution)
    current = image.convert("RGB")
    result = None
    prompts = []
    for index, box in enumerate(faces):
        mask = face_mask(current.size, box, recipe.face_expand)
        result = runner.run(current, per_face, (seed + index) % 2**32, model, mask=mask)
        if getattr(result, "prompt", None):
            prompts.append(result.prompt)
        current = restore_full_resolution(current, result, per_face.full_resolution,
                                          color_match=recipe.color_match)
    return FacesOutput(current, result.model_id, result.model_hash, result.device,
                       result.working_size, len(faces),
                       precision=getattr(result, "precision", None),
                       adapters_hash=getattr(result, "adapters_hash", None),
                       prompt=" | ".join(prompts) or None, family=getattr(result, "family", None))
