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

import functools
import inspect
import math
from pathlib import Path

from transformers import Qwen2VLProcessor
from transformers.processing_utils import ProcessorMixin

_EDIT_PIXELS = 1024 * 1024  # what the pipeline scales every photo to (diffusers 0.42)

# Qwen-Image-Edit Plus's prompt template and the tokens of it before the user's turn, which its
# pipeline drops: as diffusers' QwenImageEditPlusPipeline writes them (its __init__ sets them).
PLUS_TEMPLATE = (
    "<|im_start|>system\nDescribe the key features of the input image (color, shape, size, texture, "
    "objects, background), then explain how the user's text instruction should alter or modify the "
    "image. Generate a new image that meets the user's requirements while maintaining consistency "
    "with the original input where appropriate.<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n"
    "<|im_start|>assistant\n")
PLUS_DROP = 64


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


@functools.cache
def plus_inpaint_pipeline_class():
    """The Edit inpainting pipeline reading its photo as Qwen-Image-Edit Plus (2509 and later)
    does: Qwen2.5-VL sees the photo at about 384² pixels, named "Picture 1" in Plus's prompt
    template, each photo of a batch with its own instruction. diffusers has no Plus pipeline that
    takes a strength; Plus's own (QwenImageEditPlusPipeline) reads a list of photos as several
    references for one picture, so its conditioning is made here one photo at a time.

    Reference photos (the call's ``image_reference``) are read as Plus reads the images after
    the first: "Picture 2", "Picture 3" to Qwen2.5-VL, and their latents (at about a megapixel)
    beside the photo's in the transformer's sequence, each with its own place in its positions."""
    import torch
    from diffusers import QwenImageEditInpaintPipeline, QwenImageEditPlusPipeline
    from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit_plus as plus

    class QwenImageEditPlusInpaintPipeline(QwenImageEditInpaintPipeline):
        """QwenImageEditInpaintPipeline conditioned as QwenImageEditPlusPipeline is."""

        _references = ()  # the reference photos of the call under way
        _reference_conditions = ()  # what Qwen2.5-VL sees of them
        _reference_tokens = None  # and their packed latents and shapes, once encoded

        def __init__(self, scheduler, vae, text_encoder, tokenizer, processor, transformer):
            # (The parent's parts by name: from_pipe reads them off this signature.)
            super().__init__(scheduler=scheduler, vae=vae, text_encoder=text_encoder,
                             tokenizer=tokenizer, processor=processor, transformer=transformer)
            self.prompt_template_encode = PLUS_TEMPLATE
            self.prompt_template_encode_start_idx = PLUS_DROP

        def __call__(self, *args, image_reference=None, **kwargs):
            """The Edit inpainting pipeline's call; ``image_reference``: a reference photo or a
            list of them, read beside every photo of the call (none: the photo alone)."""
            if image_reference is None:
                self._references = []
            elif isinstance(image_reference, (list, tuple)):
                self._references = [picture.convert("RGB") for picture in image_reference]
            else:
                self._references = [image_reference.convert("RGB")]
            # Once a call: every photo's prompt, and its negative, read the same references.
            self._reference_conditions = [self._condition(picture) for picture in self._references]
            self._reference_tokens = None
            hook = (self.transformer.register_forward_pre_hook(self._with_references, with_kwargs=True)
                    if self._references else None)
            try:
                return super().__call__(*args, **kwargs)
            finally:
                if hook is not None:
                    hook.remove()
                self._references, self._reference_conditions, self._reference_tokens = (), (), None

        def _condition(self, picture):
            # What Qwen2.5-VL sees of a picture in Plus: about 384² pixels at its aspect.
            w, h = plus.calculate_dimensions(plus.CONDITION_IMAGE_SIZE, picture.width / picture.height)[:2]
            return self.image_processor.resize(picture, h, w)

        def _get_qwen_prompt_embeds(self, prompt=None, image=None, device=None, dtype=None):
            prompts = [prompt] if isinstance(prompt, str) else list(prompt)
            images = image if isinstance(image, list) else [image] * len(prompts)
            made = []
            for text, photo in zip(prompts, images):
                made.append(QwenImageEditPlusPipeline._get_qwen_prompt_embeds(
                    self, [text], [self._condition(photo), *self._reference_conditions], device, dtype))
            longest = max(embeds.shape[1] for embeds, _ in made)
            embeds = torch.cat([torch.nn.functional.pad(e, (0, 0, 0, longest - e.shape[1])) for e, _ in made])
            masks = torch.cat([torch.nn.functional.pad(m, (0, longest - m.shape[1])) for _, m in made])
            return embeds, masks

        def prepare_latents(self, *args, **kwargs):
            made = super().prepare_latents(*args, **kwargs)
            if self._references:
                # Encoded here, beside the photo, rather than in the transformer's hook: with
                # model offload the VAE must run before the transformer is brought in.
                latents = made[0]
                channels = self.transformer.config.in_channels // 4
                tokens, shapes = [], []
                for picture in self._references:
                    w, h = plus.calculate_dimensions(plus.VAE_IMAGE_SIZE, picture.width / picture.height)[:2]
                    pixels = self.image_processor.preprocess(picture, h, w).unsqueeze(2)
                    encoded = QwenImageEditPlusPipeline._encode_vae_image(
                        self, pixels.to(latents.device, latents.dtype), generator=None)
                    tokens.append(self._pack_latents(encoded, 1, channels, *encoded.shape[3:]))
                    shapes.append((1, h // self.vae_scale_factor // 2, w // self.vae_scale_factor // 2))
                self._reference_tokens = torch.cat(tokens, dim=1), shapes
            return made

        def _with_references(self, module, args, kwargs):
            # The transformer's input with the references after the photo, as in Plus's: its
            # prediction for them is cut off by the pipeline with the photo's.
            tokens, shapes = self._reference_tokens
            hidden = kwargs["hidden_states"]
            tokens = tokens.to(hidden.device, hidden.dtype).expand(hidden.shape[0], -1, -1)
            kwargs["hidden_states"] = torch.cat([hidden, tokens], dim=1)
            kwargs["img_shapes"] = [[*shapes_of_one, *shapes] for shapes_of_one in kwargs["img_shapes"]]
            return args, kwargs

    # Callers read what a pipeline takes off its __call__: the parent's arguments and the references.
    parent = inspect.signature(QwenImageEditInpaintPipeline.__call__)
    named = [p for p in parent.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    reference = inspect.Parameter("image_reference", inspect.Parameter.KEYWORD_ONLY, default=None)
    QwenImageEditPlusInpaintPipeline.__call__.__signature__ = parent.replace(
        parameters=[*named, reference, *(p for p in parent.parameters.values() if p not in named)])
    # from_pipe hands a model over only to a parameter annotated with its class: the parent's.
    QwenImageEditPlusInpaintPipeline.__init__.__annotations__ = dict(
        QwenImageEditInpaintPipeline.__init__.__annotations__)
    return QwenImageEditPlusInpaintPipeline
