"""Prompts as A1111 reads them: weighted words and any length, in chunks of 75 tokens.

CLIP reads 77 tokens (75 and its start and end marks); diffusers cuts a longer prompt there
and says so only in a log line. A1111 splits the prompt into chunks of 75 tokens (a chunk
that would end inside a phrase starts instead after the last comma within 20 tokens; BREAK
ends a chunk early), encodes each chunk alone and joins them, which the UNet's cross-attention
takes at any length. Weighted words scale their embeddings, and each chunk is scaled back to
its unweighted mean (A1111's "Original" emphasis). The prompt and negative prompt are padded
to the same number of chunks with the empty prompt's.

Written for photobatch from that documented behaviour. A plain prompt that fits one chunk
never comes here: it keeps diffusers' own encoding, bit for bit.
"""

from __future__ import annotations

from photobatch.recipes.prompt_syntax import BREAK, parse, uses_syntax

# A1111's "comma padding backtrack": how far back a chunk may end at a comma instead.
COMMA_BACKTRACK = 20


def needs_chunks(pipe, prompt: str, negative_prompt: str) -> bool:
    """Whether either prompt has A1111 syntax or is longer than one chunk for some tokenizer."""
    if uses_syntax(prompt) or uses_syntax(negative_prompt):
        return True
    for tokenizer, _ in _encoders(pipe):
        for text in (prompt, negative_prompt):
            if len(_token_ids(pipe, tokenizer, text)) > tokenizer.model_max_length - 2:
                return True
    return False


def encode_chunked(pipe, prompt: str, negative_prompt: str, clip_skip: int, sdxl: bool) -> dict:
    """The pipeline keyword tensors for one image: (negative_)prompt_embeds, and for SDXL the
    pooled ones, each prompt encoded chunk by chunk with its weights."""
    import torch

    embeds, negatives, pooled, negative_pooled = [], [], None, None
    for tokenizer, encoder in _encoders(pipe):
        positive = chunk_tokens(pipe, tokenizer, prompt)
        negative = chunk_tokens(pipe, tokenizer, negative_prompt)
        empty = chunk_tokens(pipe, tokenizer, "")[0]
        count = max(len(positive), len(negative))
        positive += [empty] * (count - len(positive))
        negative += [empty] * (count - len(negative))
        states, pools = _encode_chunks(encoder, positive, clip_skip, sdxl)
        negative_states, negative_pools = _encode_chunks(encoder, negative, clip_skip, sdxl)
        embeds.append(states)
        negatives.append(negative_states)
        pooled, negative_pooled = pools, negative_pools  # the last encoder's (SDXL: the second)
    result = {"prompt_embeds": torch.cat(embeds, dim=-1),
              "negative_prompt_embeds": torch.cat(negatives, dim=-1)}
    if sdxl:
        result["pooled_prompt_embeds"] = pooled
        result["negative_pooled_prompt_embeds"] = negative_pooled
        if not negative_prompt and getattr(pipe.config, "force_zeros_for_empty_prompt", False):
            # What SDXL pipelines do with no negative prompt.
            result["negative_prompt_embeds"] = torch.zeros_like(result["prompt_embeds"])
            result["negative_pooled_prompt_embeds"] = torch.zeros_like(pooled)
    return result


def chunk_tokens(pipe, tokenizer, text: str) -> list[tuple[list[int], list[float]]]:
    """``text`` as chunks of (77 token ids, 77 weights): start mark, up to 75 tokens, end mark,
    padding, as the tokenizer lays out one prompt."""
    size = tokenizer.model_max_length - 2
    comma = _token_ids(pipe, tokenizer, ",")
    comma = comma[0] if len(comma) == 1 else None
    chunks, tokens, weights = [], [], []

    def close():
        nonlocal tokens, weights
        chunks.append(_laid_out(tokenizer, tokens, weights))
        tokens, weights = [], []

    for fragment, weight in parse(text):
        if weight is BREAK:
            close()
            continue
        for token in _token_ids(pipe, tokenizer, fragment):
            if len(tokens) == size:
                cut = _last_comma(tokens, comma)
                if cut is not None:
                    # The phrase after the last comma moves whole into the next chunk.
                    rest, rest_weights = tokens[cut:], weights[cut:]
                    tokens, weights = tokens[:cut], weights[:cut]
                    close()
                    tokens, weights = rest, rest_weights
                else:
                    close()
            tokens.append(token)
            weights.append(weight)
    if tokens or not chunks:
        close()
    return chunks


def _last_comma(tokens: list[int], comma: int | None) -> int | None:
    """The position after the last comma, when it is within the backtrack distance."""
    if comma is None:
        return None
    for back in range(1, min(COMMA_BACKTRACK, len(tokens)) + 1):
        if tokens[-back] == comma:
            return len(tokens) - back + 1 if back > 1 else None
    return None


def _laid_out(tokenizer, tokens: list[int], weights: list[float]) -> tuple[list[int], list[float]]:
    length = tokenizer.model_max_length
    ids = [tokenizer.bos_token_id, *tokens, tokenizer.eos_token_id]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids += [pad] * (length - len(ids))
    return ids, [1.0, *weights] + [1.0] * (length - 1 - len(weights))


def _token_ids(pipe, tokenizer, text: str) -> list[int]:
    if hasattr(pipe, "maybe_convert_prompt"):
        # A multi-vector embedding's token stands for several tokens ("x" -> "x x_1 x_2").
        text = pipe.maybe_convert_prompt(text, tokenizer)
    return tokenizer(text, add_special_tokens=False, truncation=False, verbose=False).input_ids


def _encoders(pipe) -> list:
    pairs = [(getattr(pipe, "tokenizer", None), getattr(pipe, "text_encoder", None)),
             (getattr(pipe, "tokenizer_2", None), getattr(pipe, "text_encoder_2", None))]
    return [(t, e) for t, e in pairs if t is not None and e is not None]


def skipped_layer(encoder, hidden_states, clip_skip: int, sdxl: bool):
    """The layer A1111's clip skip ``clip_skip`` conditions on, from the encoder's hidden states:
    SDXL reads them as they are (the penultimate layer at 1), SD 1.x/2.x through the final layer
    norm (what the model was trained to read, as A1111 and diffusers both do)."""
    layers = len(hidden_states) - 1  # the first is the token embeddings
    back = clip_skip + 1 if sdxl else clip_skip
    if back > layers:
        raise ValueError(f"clip_skip {clip_skip} is more than the text encoder's {layers} layers")
    if sdxl:
        return hidden_states[-back]
    # transformers >= 5.6 keeps the norm on the model itself, earlier versions on text_model.
    norm = getattr(encoder, "text_model", encoder).final_layer_norm
    return norm(hidden_states[-back])


def _encode_chunks(encoder, chunks, clip_skip: int, sdxl: bool):
    """Each chunk through ``encoder`` (the layer clip_skip picks, as the pipelines read it),
    weighted and scaled back to its mean, joined along the tokens; and the first chunk's pooled
    output (SDXL's second encoder gives it)."""
    import torch

    reads_layers = sdxl or clip_skip > 1
    states, pooled = [], None
    for ids, weights in chunks:
        ids = torch.tensor([ids], device=encoder.device)
        with torch.no_grad():
            out = encoder(ids, output_hidden_states=reads_layers)
            if sdxl and pooled is None:
                pooled = out[0]
            z = skipped_layer(encoder, out.hidden_states, clip_skip, sdxl) if reads_layers else out[0]
            if any(w != 1.0 for w in weights):
                scale = torch.tensor(weights, dtype=z.dtype, device=z.device)
                mean = z.float().mean()
                z = z * scale[None, :, None]
                z = z * (mean / z.float().mean()).to(z.dtype)
        states.append(z.to(dtype=encoder.dtype))
    return torch.cat(states, dim=1), pooled
