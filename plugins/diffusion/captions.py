"""Captions for prompts: ``{caption}`` in a recipe's prompt becomes what a captioning model
(BLIP by default) says the photo shows, so one recipe ("{caption}, deep winter, snow") keeps
each photo's own content in its prompt. A1111 calls this "Interrogate"; ComfyUI users wire a
BLIP or Florence node into the prompt.
"""

from __future__ import annotations

from dataclasses import replace

from PIL import Image

from photobatch.plugins.diffusion.helper_models import HelperModel, load_helper_model
from photobatch.recipes.runner_fields import CAPTION_TOKEN

# Long captions crowd the recipe's own words out of CLIP's 75 tokens.
MAX_NEW_TOKENS = 30
# The captioner sees a small picture: captioning models work at ~384 px.
CAPTION_SIDE = 512


def load_captioner(source: str, device: str) -> HelperModel:
    """Load a captioning model (BLIP and other image-text-to-text models transformers maps)
    from a folder or a hub id (offline: the HF cache)."""
    return load_helper_model("captioner", source, device, "AutoModelForImageTextToText")


def caption(captioner: HelperModel, image: Image.Image) -> str:
    """What the photo shows, in a few words (greedy decoding: the same photo, the same words)."""
    import torch

    small = image.convert("RGB")
    small.thumbnail((CAPTION_SIDE, CAPTION_SIDE))
    with torch.inference_mode():
        inputs = captioner.processor(images=small, return_tensors="pt").to(captioner.device)
        ids = captioner.model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
    text = captioner.processor.decode(ids[0], skip_special_tokens=True)
    # Brackets and colons mean weights in A1111's prompt syntax: a caption is plain words.
    return " ".join(text.replace("(", " ").replace(")", " ").replace("[", " ").replace("]", " ")
                    .replace(":", " ").split())


def with_caption(settings, text: str):
    """``settings`` with ``{caption}`` in its prompts replaced by ``text``."""
    return replace(settings, prompt=settings.prompt.replace(CAPTION_TOKEN, text),
                   negative_prompt=(settings.negative_prompt or "").replace(CAPTION_TOKEN, text))
