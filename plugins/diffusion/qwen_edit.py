"""Qwen-Image-Edit: the processor its text encoder reads the photo through, and the size its
pipeline works at.

diffusers' Qwen-Image-Edit pipelines hand the prompt and the photo to Qwen2.5-VL through
transformers' ``Qwen2VLProcessor``, which in transformers 5 cannot be made without torchvision
(its video processor needs it; photobatch does not depend on torchvision). Photobatch reads no
video: ``ImageOnlyQwen2VLProcessor`` is that processor without its video part, loaded from the
model's own ``processor`` folder and given to the pipeline in its place.

The Edit pipeline that takes a strength (``QwenImageEditInpaintPipeline``) scales every photo to
about a megapixel at the photo's aspect, sides multiples of 32, whatever size it is asked for:
``edit_size`` is that size, so that the runner hands it a photo it keeps as it is.
"""

from __future__ import annotations

import math
from pathlib import Path

from transformers import Qwen2VLProcessor
from transformers.processing_utils import ProcessorMixin

_EDIT_PIXELS = 1024 * 1024  # what the pipeline scales every photo to (diffusers 0.36-0.42)


class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
    """``Qwen2VLProcessor`` for pictures and text only: its image processor and tokenizer,
    without the video processor (which needs torchvision)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        """The processor made of ``image_processor`` and ``tokenizer`` (its vision tokens as
        Qwen2VLProcessor finds them)."""
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
        self.image_token_id = (getattr(tokenizer, "image_token_id", None)
                               or tokenizer.convert_tokens_to_ids(self.image_token))
        self.video_token_id = (getattr(tokenizer, "video_token_id", None)
                               or tokenizer.convert_tokens_to_ids(self.video_token))
        # (Qwen2VLProcessor's own __init__ would ask for the video processor.)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)


def load_processor(folder: str) -> ImageOnlyQwen2VLProcessor:
    """The processor of the Qwen-Image-Edit model in ``folder`` (its diffusers folder, or a hub
    id's cached copy), from its ``processor`` folder."""
    return ImageOnlyQwen2VLProcessor.from_pretrained(str(Path(folder) / "processor"))


def _pipeline_size(width: int, height: int) -> tuple[int, int]:
    # The pipeline's own calculate_dimensions, then its multiple of 16.
    ratio = width / height
    w = math.sqrt(_EDIT_PIXELS * ratio)
    h = w / ratio
    return round(w / 32) * 32 // 16 * 16, round(h / 32) * 32 // 16 * 16


def edit_size(width: int, height: int) -> tuple[int, int]:
    """The size a ``width`` x ``height`` photo goes to the Edit pipeline at: about a megapixel at
    its aspect, sides multiples of 32, and one the pipeline keeps as it is when given it (its
    sizing reads the aspect of what it is given, rounded once already)."""
    size = _pipeline_size(width, height)
    for _ in range(4):
        again = _pipeline_size(*size)
        if again == size:
            break
        size = again
    return size
