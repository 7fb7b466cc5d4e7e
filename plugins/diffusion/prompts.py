"""A1111's "Clip skip": the prompt conditioned on an earlier layer of the CLIP text encoder.

A1111 numbers it from 1 (the last layer, no skip) and skips for the prompt and the negative
prompt alike. diffusers' SD 1.x/2.x pipelines skip for the prompt only, and with transformers
5.6 and later they fail outright (``CLIPTextModel`` lost its ``text_model``; huggingface/diffusers
issue 14124, open), so for those the embeddings are computed here and handed to the pipeline.
SDXL pipelines do it themselves (they read the hidden states and apply no final norm).
"""

from __future__ import annotations


def clip_skip_arguments(pipe, prompt: str, negative_prompt: str, count: int, clip_skip: int) -> dict:
    """Pipeline keyword arguments that condition ``count`` images on layer ``-clip_skip`` of the
    text encoder (A1111 numbering: 2 is the penultimate layer)."""
    if getattr(pipe, "text_encoder_2", None) is not None or getattr(pipe, "text_encoder", None) is None:
        return {"clip_skip": clip_skip - 1}  # diffusers counts the layers skipped after the last
    embeds = encode_skipping(pipe, [prompt] * count, clip_skip)
    negatives = encode_skipping(pipe, [negative_prompt or ""] * count, clip_skip)
    return {"prompt": None, "negative_prompt": None, "prompt_embeds": embeds,
            "negative_prompt_embeds": negatives}


def encode_skipping(pipe, texts: list[str], clip_skip: int):
    """CLIP embeddings of ``texts`` from layer ``-clip_skip``, through the final layer norm (what
    the model was trained to read, as A1111 and diffusers both do)."""
    import torch

    encoder, tokenizer = pipe.text_encoder, pipe.tokenizer
    if hasattr(pipe, "maybe_convert_prompt"):
        # A multi-vector embedding's token stands for several tokens ("x" -> "x x_1 x_2").
        texts = [pipe.maybe_convert_prompt(text, tokenizer) for text in texts]
    ids = tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length,
                    truncation=True, return_tensors="pt").input_ids.to(encoder.device)
    with torch.no_grad():
        states = encoder(ids, output_hidden_states=True).hidden_states
        layers = len(states) - 1  # the first is the token embeddings
        if clip_skip > layers:
            raise ValueError(f"clip_skip {clip_skip} is more than the text encoder's {layers} layers")
        hidden = states[-clip_skip]
        # transformers >= 5.6 keeps the norm on the model itself, earlier versions on text_model.
        norm = getattr(encoder, "text_model", encoder).final_layer_norm
        return norm(hidden).to(dtype=encoder.dtype)
