"""FLUX.1 Redux: BFL's image prompt for FLUX.1, named as a recipe's ip_adapter model.

Redux is no IP-Adapter: its prior pipeline (a SigLIP image encoder and a small projection)
turns the reference photo into tokens that are appended to the prompt's T5 tokens, and the
FLUX.1 pipeline is given the result as its prompt embeddings. So a recipe's ``ip_adapter``
table takes it as it takes XLabs' adapter (``model``, ``reference``, ``scale``), and the
reference photo, its fingerprint and ``reference_colors`` work the same way; ``scale`` is the
prior's prompt_embeds_scale and pooled_prompt_embeds_scale, shared among several references.
"""

from __future__ import annotations

import json
from pathlib import Path

from photobatch.plugins.diffusion.loading import load_component
from photobatch.plugins.diffusion.sources import ModelError, cached_snapshot, names_a_path

PRIOR_CLASS = "FluxPriorReduxPipeline"


def is_redux(model: str) -> bool:
    """Whether an ip_adapter ``model`` names FLUX.1 Redux: a folder (or a hub id's cached copy)
    whose model_index.json is the Redux prior's, or a hub id not cached yet named like
    black-forest-labs/FLUX.1-Redux-dev."""
    folder = Path(model).expanduser()
    if not folder.is_dir() and not names_a_path(model):
        cached = cached_snapshot(model)
        if cached is None:
            return "redux" in model.lower()
        folder = Path(cached)
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return index.get("_class_name") == PRIOR_CLASS


def redux_arguments(pipe, loaded, spec, conditioning: dict, references) -> dict:
    """The prompt embeddings that condition ``pipe``'s call on the Redux ``spec``'s reference
    photos (``references``, loaded) beside the prompt's own (``conditioning``: the pipeline
    arguments prompt_arguments made, one row per image)."""
    import torch

    if loaded.info.family.name != "flux":
        raise ValueError(f"ip_adapter {spec.model} is FLUX.1 Redux, which conditions FLUX.1 "
                         f"models only, not {loaded.info.family.label}")
    prior = _prior(pipe, loaded, spec.model)
    count, n = len(references), conditioning["prompt_embeds"].shape[0]
    with torch.no_grad():
        out = prior(image=list(references),
                    prompt_embeds=conditioning["prompt_embeds"][:1].repeat(count, 1, 1),
                    pooled_prompt_embeds=conditioning["pooled_prompt_embeds"][:1].repeat(count, 1),
                    # The prior sums its images' conditionings: each gets its share of the scale.
                    prompt_embeds_scale=[spec.scale / count] * count,
                    pooled_prompt_embeds_scale=[spec.scale / count] * count)
    return {"prompt_embeds": out.prompt_embeds.repeat(n, 1, 1),
            "pooled_prompt_embeds": out.pooled_prompt_embeds.repeat(n, 1)}


def _prior(pipe, loaded, model: str):
    # Loaded once per model; it reads the prompt through the model's own text encoders (given
    # here, so that it takes the embeddings photobatch made instead of zeros of FLUX.1's size).
    if model not in loaded.priors:
        from diffusers import FluxPriorReduxPipeline

        def from_file(path):
            raise ModelError(f"ip_adapter {path.name}: FLUX.1 Redux loads from its diffusers folder "
                             "or hub id (black-forest-labs/FLUX.1-Redux-dev), not a single file")

        def load(location, **kwargs):
            return FluxPriorReduxPipeline.from_pretrained(
                str(location), dtype=loaded.dtype, text_encoder=pipe.text_encoder,
                tokenizer=pipe.tokenizer, text_encoder_2=pipe.text_encoder_2,
                tokenizer_2=pipe.tokenizer_2, **kwargs)

        prior = load_component("ip_adapter", model, loaded.device, from_file=from_file,
                               from_folder=load,
                               from_hub=lambda name, cache_only: load(name, local_files_only=cache_only))
        prior.set_progress_bar_config(disable=True)
        loaded.priors[model] = prior
    return loaded.priors[model]
