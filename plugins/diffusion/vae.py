"""A recipe's own VAE (A1111's "SD VAE" setting): the autoencoder that turns pixels into latents
and back, swapped for one that decodes finer detail or truer colour (e.g. SD 1.5 with the
ft-MSE VAE), the rest of the model shared.

A diffusers folder (the VAE's own, or a model folder with ``vae/``), a single ``.safetensors``
file (configured from the recipe model's own ``vae`` config, so it loads offline), or a hub id.
"""

from __future__ import annotations

from pathlib import Path

from photobatch.plugins.diffusion.loading import load_component
from photobatch.plugins.diffusion.sources import cache_only_reason


def load_vae(source: str, device: str, dtype, config: str | None):
    """Load the AutoencoderKL ``source``; ``config``: a diffusers model folder (or hub id) whose
    ``vae`` config describes a single file's architecture."""
    from diffusers import AutoencoderKL

    def from_file(path):
        kwargs = {"config": config, "subfolder": "vae"} if config else {}
        # Its config comes from the hub unless it is a local folder.
        local = bool(config) and Path(config).is_dir()
        return AutoencoderKL.from_single_file(
            str(path), dtype=dtype, local_files_only=local or cache_only_reason() is not None,
            **kwargs)

    def from_folder(path):
        # The VAE's own folder, or a model folder with vae/ in it.
        sub = {} if (path / "config.json").is_file() else {"subfolder": "vae"}
        return AutoencoderKL.from_pretrained(str(path), dtype=dtype, **sub)

    return load_component(
        "vae", source, device, from_file=from_file, from_folder=from_folder,
        from_hub=lambda name, cache_only: AutoencoderKL.from_pretrained(
            name, dtype=dtype, local_files_only=cache_only))
