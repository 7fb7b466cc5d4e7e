"""Prompts as A1111 users write them: (emphasis:1.2), [less], BREAK and prompts longer than
CLIP's 75 tokens, encoded in chunks; plain short prompts keep diffusers' own encoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from photobatch.plugins.diffusion.prompt_chunks import chunk_tokens, encode_chunked, needs_chunks
from photobatch.plugins.diffusion.prompts import _encode
from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.recipes.prompt_syntax import BREAK, parse, surely_longer_than_a_chunk, uses_syntax
from photobatch.recipes.schema import recipe_from_dict

LONG = ", ".join(f"snowy pine forest {n}" for n in range(30))  # ~150 tokens


@pytest.fixture(scope="module")
def sd_pipe(standin_model):
    # fp32: the weighting's arithmetic is checked against its definition.
    return DiffusersImg2ImgRunner(native_size=64, precision="fp32").pipeline(str(standin_model))[0]


@pytest.fixture(scope="module")
def sdxl_pipe(tmp_path_factory):
    from photobatch.plugins.diffusion.standin import save_standin_model

    model = save_standin_model(tmp_path_factory.mktemp("sdxl") / "m", kind="sdxl")
    return DiffusersImg2ImgRunner(native_size=64, precision="fp32").pipeline(str(model))[0]


@pytest.mark.parametrize("text, expected", [
    ("a photo", [("a photo", 1.0)]),
    ("a (red) car", [("a ", 1.0), ("red", 1.1), (" car", 1.0)]),
    ("((red))", [("red", pytest.approx(1.21))]),
    ("[red] car", [("red", pytest.approx(1 / 1.1)), (" car", 1.0)]),
    ("(red:1.5), (blue:0.25)", [("red", 1.5), (", ", 1.0), ("blue", 0.25)]),
    ("((red:2))", [("red", pytest.approx(2.2))]),
    (r"a \(red\) car", [("a (red) car", 1.0)]),
    ("one BREAK two", [("one", 1.0), ("BREAK", BREAK), ("two", 1.0)]),
    ("BREAKfast", [("BREAKfast", 1.0)]),
    ("a (open car", [("a ", 1.0), ("open car", 1.1)]),
    ("", [("", 1.0)]),
])
def test_a1111_syntax_parses_as_its_wiki_documents(text, expected):
    assert parse(text) == expected


def test_plain_prompts_keep_their_fingerprint_and_weighted_ones_are_marked():
    plain = recipe_from_dict({"name": "r", "prompt": "golden light, soft shadows"})
    assert "prompt_syntax" not in plain.params() and not uses_syntax(plain.prompt)
    weighted = recipe_from_dict({"name": "r", "prompt": "(golden light:1.3), soft shadows"})
    assert weighted.params()["prompt_syntax"] == "a1111"
    negative = recipe_from_dict({"name": "r", "prompt": "golden light", "negative_prompt": "[blur]"})
    assert negative.params()["prompt_syntax"] == "a1111"
    # (word:1) weighs nothing: read as plain text.
    assert not uses_syntax("(golden light:1)")
    assert parse("(golden light:1)") == [("golden light", 1.0)]


def test_prompts_surely_longer_than_a_chunk_are_marked_too(sd_pipe):
    long = ", ".join(["golden light on the old stone houses of the harbour"] * 9)
    assert surely_longer_than_a_chunk(long)
    assert recipe_from_dict({"name": "r", "prompt": long}).params()["prompt_syntax"] == "a1111"
    assert "prompt_syntax" not in recipe_from_dict({"name": "r", "prompt": long[:200]}).params()
    # The count is a lower bound of the tokenizer's: every piece is at least one token.
    from photobatch.recipes.prompt_syntax import _PIECES

    tokenizer = sd_pipe.tokenizer
    for text in ("don't stop, it's 1999!!", "naïve café_au_lait...", "a photo of 3 cats; on_the mat",
                 "I'LL be there (maybe)", long):
        tokens = tokenizer(text, add_special_tokens=False).input_ids
        assert len(_PIECES.findall(text.lower())) <= len(tokens), text


@pytest.mark.parametrize("kind", ["sd", "sdxl"])
@pytest.mark.parametrize("negative", ["blurry", ""])
def test_a_plain_short_prompt_encodes_in_chunks_exactly_as_diffusers(request, kind, negative):
    pipe = request.getfixturevalue(f"{kind}_pipe")
    assert not needs_chunks(pipe, "a photo of snow", negative)
    theirs = _encode(pipe, "a photo of snow", negative, 1)  # the pipeline's own encode_prompt
    ours = encode_chunked(pipe, "a photo of snow", negative, 1, kind == "sdxl")
    assert theirs.keys() == ours.keys()
    for name in theirs:
        assert torch.equal(theirs[name], ours[name]), name


def test_a_long_prompt_is_read_to_its_end_in_chunks_of_75(sd_pipe):
    tokenizer = sd_pipe.tokenizer
    ids = tokenizer(LONG, add_special_tokens=False, verbose=False).input_ids
    assert len(ids) > 2 * 75 and needs_chunks(sd_pipe, LONG, "")
    chunks = chunk_tokens(sd_pipe, tokenizer, LONG)
    n = len(chunks)
    assert n >= -(-len(ids) // 75)
    body = []
    for chunk_ids, weights in chunks:
        assert len(chunk_ids) == len(weights) == 77 and set(weights) == {1.0}
        assert chunk_ids[0] == tokenizer.bos_token_id
        inner = chunk_ids[1:chunk_ids.index(tokenizer.eos_token_id)]
        assert 0 < len(inner) <= 75
        body += inner
    assert body == ids  # every token, in order, none cut
    tensors = _encode(sd_pipe, LONG, "", 1)
    assert tensors["prompt_embeds"].shape == (1, n * 77, 32)
    # The negative prompt is padded with the empty prompt's chunks to the same length.
    assert tensors["negative_prompt_embeds"].shape == (1, n * 77, 32)
    empty = _encode(sd_pipe, "x", "", 1)["negative_prompt_embeds"]
    assert torch.equal(tensors["negative_prompt_embeds"][:, 77:154], empty)


def test_a_chunk_ends_at_the_last_comma_rather_than_inside_a_phrase(sd_pipe):
    tokenizer = sd_pipe.tokenizer
    comma = tokenizer(",", add_special_tokens=False).input_ids
    assert len(comma) == 1
    chunks = chunk_tokens(sd_pipe, tokenizer, LONG)
    first = chunks[0][0]
    inner = first[1:first.index(tokenizer.eos_token_id)]
    assert len(inner) < 75 and inner[-1] == comma[0]  # ended early, at a comma
    phrase = tokenizer("snowy pine forest", add_special_tokens=False).input_ids
    # The next chunk starts with the phrase the comma introduced, whole.
    assert chunks[1][0][1:1 + len(phrase)] == phrase


def test_break_ends_a_chunk(sd_pipe):
    chunks = chunk_tokens(sd_pipe, sd_pipe.tokenizer, "a photo BREAK snow")
    assert len(chunks) == 2
    eos = sd_pipe.tokenizer.eos_token_id
    assert sd_pipe.tokenizer.decode(chunks[0][0][1:chunks[0][0].index(eos)]).strip() == "a photo"
    assert sd_pipe.tokenizer.decode(chunks[1][0][1:chunks[1][0].index(eos)]).strip() == "snow"
    assert _encode(sd_pipe, "a photo BREAK snow", "", 1)["prompt_embeds"].shape[1] == 2 * 77


def test_a_weight_scales_its_tokens_and_the_chunk_keeps_its_mean(sd_pipe):
    plain = _encode(sd_pipe, "a photo of snow", "", 1)["prompt_embeds"][0]
    weighted = _encode(sd_pipe, "a photo of (snow:1.5)", "", 1)["prompt_embeds"][0]
    ids = chunk_tokens(sd_pipe, sd_pipe.tokenizer, "a photo of (snow:1.5)")[0]
    snow = [i for i, w in enumerate(ids[1]) if w == 1.5]
    assert snow and len(snow) == len(sd_pipe.tokenizer("snow", add_special_tokens=False).input_ids)
    others = [i for i in range(77) if i not in snow]
    # Every other token is scaled by the one factor that restores the mean; the weighted ones by
    # 1.5 times it (the same layer output, the same tokens).
    factor = (weighted[others] / plain[others]).median()
    assert torch.allclose(weighted[others], plain[others] * factor, rtol=1e-4, atol=1e-5)
    assert torch.allclose(weighted[snow], plain[snow] * 1.5 * factor, rtol=1e-4, atol=1e-5)
    assert torch.isclose(weighted.mean(), plain.mean(), rtol=0, atol=1e-6)
    assert factor != 1.0


def test_sdxl_skips_clip_layers_for_the_negative_prompt_too(sdxl_pipe):
    skipped = _encode(sdxl_pipe, "a photo", "blurry", 2)
    ids = torch.tensor([chunk_tokens(sdxl_pipe, sdxl_pipe.tokenizer_2, "blurry")[0][0]])
    with torch.no_grad():
        states = sdxl_pipe.text_encoder_2(ids, output_hidden_states=True).hidden_states
    width = sdxl_pipe.text_encoder.config.hidden_size
    negative_from_2 = skipped["negative_prompt_embeds"][0, :, width:]
    assert torch.equal(negative_from_2, states[-3][0])  # A1111's clip skip 2: one layer further
    assert not torch.equal(negative_from_2, states[-2][0])  # where diffusers would stop


def test_weights_and_long_prompts_change_the_picture_and_a_seed_repeats_it(standin_model):
    runner = DiffusersImg2ImgRunner(native_size=64)
    photo = Image.fromarray(np.random.default_rng(8).integers(0, 255, (64, 64, 3), dtype=np.uint8))

    def picture(prompt):
        recipe = recipe_from_dict({"name": "p", "prompt": prompt, "strength": 0.6, "steps": 5,
                                   "sampler": "Euler"})
        return np.asarray(runner.run(photo, recipe, 4, str(standin_model)).image, dtype=int)

    plain = picture("a photo of snow")
    weighted = picture("a photo of (snow:1.8)")
    assert np.abs(weighted - plain).mean() > 0.1
    assert np.array_equal(picture("a photo of (snow:1.8)"), weighted)
    # What diffusers would have cut off now counts.
    tokenizer = runner.pipeline(str(standin_model))[0].tokenizer
    head = tokenizer.decode(tokenizer(LONG, add_special_tokens=False).input_ids[:75])
    assert np.abs(picture(LONG) - picture(head)).mean() > 0.1
