"""Textual-inversion embeddings (A1111's "embeddings"): a token in the prompt or negative prompt
calls up a learnt vector; recipes that do not use the token are unaffected."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from photobatch.plugins.diffusion.runner import DiffusersImg2ImgRunner
from photobatch.plugins.diffusion.sources import ModelError
from photobatch.recipes.schema import RecipeError, recipe_from_dict


def _recipe(**fields):
    return recipe_from_dict({"name": "e", "prompt": "a photo of snow", "strength": 0.5, "steps": 4,
                             "sampler": "Euler", **fields})


@pytest.fixture(scope="module")
def embedding(tmp_path_factory):
    """A two-vector embedding for the stand-in's 32-wide text encoder (diffusers' file layout)."""
    path = tmp_path_factory.mktemp("emb") / "snowy.safetensors"
    torch.manual_seed(11)
    save_file({"emb_params": torch.randn(2, 32) * 3}, str(path))
    return path


def _run(runner, model, seed=5, **fields):
    photo = Image.fromarray(np.random.default_rng(3).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    return np.asarray(runner.run(photo, _recipe(**fields), seed, str(model)).image, dtype=int)


def test_the_token_calls_up_the_embedding_and_only_where_used(standin_model, embedding):
    runner = DiffusersImg2ImgRunner(native_size=64, precision="fp32")
    plain = _run(runner, standin_model)
    spec = [{"path": str(embedding), "token": "snowy"}]
    # Loaded but not used in the prompt: the same picture.
    assert np.array_equal(_run(runner, standin_model, embeddings=spec), plain)
    used = _run(runner, standin_model, embeddings=spec, prompt="a snowy photo of snow")
    # A model that never loaded it reads "snowy" as letters.
    as_words = _run(DiffusersImg2ImgRunner(native_size=64, precision="fp32"), standin_model,
                    prompt="a snowy photo of snow")
    assert np.abs(used - as_words).mean() > 0.5  # the vectors, not the letters s-n-o-w-y
    negative = _run(runner, standin_model, embeddings=spec, negative_prompt="snowy")
    assert np.abs(negative - plain).mean() > 0.5
    # With clip skip the token is expanded too (two vectors: "snowy snowy_1").
    skipped = _run(runner, standin_model, embeddings=spec, prompt="a snowy photo of snow", clip_skip=2)
    assert np.abs(skipped - used).mean() > 0.1
    # Recipes that never name it still get the plain model.
    assert np.array_equal(_run(runner, standin_model), plain)


def test_embedding_problems_are_named(standin_model, embedding, tmp_path):
    runner = DiffusersImg2ImgRunner(native_size=64)
    pickle = tmp_path / "old.pt"
    pickle.write_bytes(b"x")
    with pytest.raises(ModelError, match="embedding old.pt: only .safetensors files are loaded"):
        _run(runner, standin_model, embeddings=[{"path": str(pickle), "token": "old"}])
    _run(runner, standin_model, embeddings=[{"path": str(embedding), "token": "snowy"}])
    other = tmp_path / "other.safetensors"
    save_file({"emb_params": torch.randn(1, 32)}, str(other))
    with pytest.raises(ModelError, match="token 'snowy' already calls up snowy.safetensors"):
        _run(runner, standin_model, embeddings=[{"path": str(other), "token": "snowy"}])


@pytest.mark.parametrize("entry, message", [
    ({"path": "a.safetensors"}, "needs token"),
    ({"path": "a.safetensors", "token": "two words"}, "must be one word"),
    ({"token": "x"}, "needs path"),
    ({"path": "a.safetensors", "token": "x", "weight": 1}, "unknown field 'weight'"),
])
def test_embedding_entries_are_checked(entry, message):
    with pytest.raises(RecipeError, match=message):
        _recipe(embeddings=[entry])


def test_embeddings_count_in_the_fingerprint_only_when_set():
    assert "embeddings" not in _recipe().params()
    spec = [{"path": "a.safetensors", "token": "x"}]
    assert _recipe(embeddings=spec).fingerprint != _recipe().fingerprint


def test_sdxl_embeddings_load_into_both_text_encoders(tmp_path, embedding):
    from photobatch.plugins.diffusion.standin import save_standin_model

    model = save_standin_model(tmp_path / "sdxl", kind="sdxl")
    xl = tmp_path / "xl.safetensors"
    torch.manual_seed(12)
    save_file({"clip_l": torch.randn(1, 32) * 3, "clip_g": torch.randn(1, 32) * 3}, str(xl))
    runner = DiffusersImg2ImgRunner(native_size=64, precision="fp32")
    plain = _run(runner, model, prompt="a snowy photo of snow")
    used = _run(runner, model, prompt="a snowy photo of snow",
                embeddings=[{"path": str(xl), "token": "snowy"}])
    assert np.abs(used - plain).mean() > 0.5
    pipe = runner.pipeline(str(model))[0]
    assert "snowy" in pipe.tokenizer.get_vocab() and "snowy" in pipe.tokenizer_2.get_vocab()
    # An SD 1.x embedding is not one for SDXL: said so, naming the file.
    with pytest.raises(ModelError, match="snowy.safetensors is not an SDXL embedding"):
        _run(runner, model, embeddings=[{"path": str(embedding), "token": "frosty"}])
