"""The prompt's conditioning: encoded once per prompt and model, and A1111's "Clip skip".

A batch of photos under one recipe shares one prompt: its text-encoder embeddings are computed
once and kept on the loaded model (A1111 caches its conditioning the same way), keyed by
everything that changes them: the prompts, the clip skip, the active LoRAs with their weights
(a LoRA may train the text encoder) and the textual-inversion tokens loaded. The embeddings
come from the pipeline's own ``encode_prompt`` with the arguments its ``__call__`` would pass,
so a cached call gives the picture an uncached one gives.

"Clip skip" conditions on an earlier layer of the CLIP text encoder. A1111 numbers it from 1
(the last layer, no skip) and skips for the prompt and the negative prompt alike. diffusers'
SD 1.x/2.x pipelines skip for the prompt only, and with transformers 5.6 and later they fail
outright (``CLIPTextModel`` lost its ``text_model``; huggingface/diffusers issue 14124, open),
so for those the embeddings are computed here. SDXL pipelines read the hidden states (no final
norm) but skip for the prompt only, so with a clip skip SDXL's are computed here too.

A prompt in A1111's syntax ("(golden light:1.2)", BREAK) or longer than CLIP's 75 tokens is
encoded as A1111 does, in chunks (``prompt_chunks``); a plain one by the pipeline itself.
"""

from __future__ import annotations

import functools
import inspect

from photobatch.plugins.diffusion.flow import encode_flow_prompt
from photobatch.plugins.diffusion.prompt_chunks import encode_chunked, needs_chunks, skipped_layer

# Conditionings kept per model: recipes with their own prompts, a few at a time.
_KEPT = 16


def prompt_arguments(pipe, loaded, settings, count: int) -> dict:
    """Pipeline keyword arguments conditioning ``count`` images on ``settings``' prompts.

    Call with the recipe's LoRAs and embeddings in place (they are part of the key).
    """
    if loaded.info.edit:
        # Qwen-Image-Edit's text encoder reads the photo with the prompt: its conditioning is
        # each photo's own, made by the pipeline in its call.
        return {"prompt": [settings.prompt] * count,
                "negative_prompt": [settings.negative_prompt or " "] * count}
    true_cfg = settings.true_cfg > 1
    key = (settings.prompt, settings.negative_prompt or "", settings.clip_skip, true_cfg,
           tuple((spec.path, float(spec.weight)) for spec in settings.loras),
           tuple(sorted(loaded.embeddings.items())))
    kept = loaded.conditioning
    tensors = kept.pop(key, None)
    if tensors is None and loaded.info.family.flow:
        tensors = encode_flow_prompt(pipe, loaded.info.family, settings.prompt,
                                     settings.negative_prompt, settings.clip_skip, true_cfg,
                                     loaded.info.variant)
    elif tensors is None:
        tensors = _encode(pipe, settings.prompt, settings.negative_prompt, settings.clip_skip)
    kept[key] = tensors  # most recently used last
    while len(kept) > _KEPT:
        kept.pop(next(iter(kept)))
    arguments = {"prompt": None}
    if "negative_prompt_embeds" in tensors and _takes(pipe, "negative_prompt"):
        # (FLUX.2 [klein]'s pipelines take the negative's embeddings only.)
        arguments["negative_prompt"] = None
    for name, tensor in tensors.items():
        # Z-Image's pipelines take a list of tensors, one a prompt, each its own length.
        arguments[name] = (tensor * count if isinstance(tensor, list)
                           else tensor.repeat(count, *([1] * (tensor.dim() - 1))))
    return arguments


def _takes(pipe, argument: str) -> bool:
    return argument in _call_parameters(type(pipe))


@functools.cache
def _call_parameters(cls) -> frozenset:
    # Read once a pipeline class, not on every call.
    return frozenset(inspect.signature(cls.__call__).parameters)


def _is_sdxl(pipe) -> bool:
    return getattr(pipe, "text_encoder_2", None) is not None or getattr(pipe, "text_encoder", None) is None


def _encode(pipe, prompt: str, negative_prompt: str | None, clip_skip: int) -> dict:
    """The conditioning of one image: what the pipeline's ``__call__`` would compute."""
    import torch

    device = pipe._execution_device
    sdxl = _is_sdxl(pipe)
    if needs_chunks(pipe, prompt, negative_prompt or "") or (sdxl and clip_skip > 1):
        # A1111 syntax or a prompt longer than CLIP's 75 tokens, which diffusers would cut; and
        # SDXL skipping layers, which its pipelines do for the prompt but not the negative one.
        return encode_chunked(pipe, prompt, negative_prompt or "", clip_skip, sdxl)
    with torch.no_grad():
        if sdxl:
            embeds, negatives, pooled, negative_pooled = pipe.encode_prompt(
                prompt=prompt, device=device, num_images_per_prompt=1,
                do_classifier_free_guidance=True, negative_prompt=negative_prompt or None)
            return {"prompt_embeds": embeds, "negative_prompt_embeds": negatives,
                    "pooled_prompt_embeds": pooled, "negative_pooled_prompt_embeds": negative_pooled}
        if clip_skip > 1:
            embeds = encode_skipping(pipe, [prompt], clip_skip)
            negatives = encode_skipping(pipe, [negative_prompt or ""], clip_skip)
        else:
            embeds, negatives = pipe.encode_prompt(prompt, device, 1, True, negative_prompt or None)
    return {"prompt_embeds": embeds, "negative_prompt_embeds": negatives}


def encode_skipping(pipe, texts: list[str], clip_skip: int):
    """CLIP embeddings of ``texts`` from layer ``-clip_skip``, through the final layer norm."""
    import torch

    encoder, tokenizer = pipe.text_encoder, pipe.tokenizer
    if hasattr(pipe, "maybe_convert_prompt"):
        # A multi-vector embedding's token stands for several tokens ("x" -> "x x_1 x_2").
        texts = [pipe.maybe_convert_prompt(text, tokenizer) for text in texts]
    ids = tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length,
                    truncation=True, return_tensors="pt").input_ids.to(encoder.device)
    with torch.no_grad():
        states = encoder(ids, output_hidden_states=True).hidden_states
        return skipped_layer(encoder, states, clip_skip, sdxl=False).to(dtype=encoder.dtype)
