"""A recipe's own VAE (A1111's "SD VAE" setting): the autoencoder that turns pixels into latents
and back, swapped for one that decodes finer detail or truer colour (e.g. SD 1.5 with the
ft-MSE VAE), the rest of the model shared.

A diffusers folder (the VAE's own, or a model folder with ``vae/``), a single ``.safetensors``
file (configured from the recipe model's own ``vae`` config, so it loads offline), or a hub id.
"""

from __future__ import annotations

from pathlib import Path

from photobatch.plugins.diffusion.loading import first_line
from photobatch.plugins.diffusion.sources import ModelError, offline


def load_vae(source: str, device: str, dtype, config: str | None):
    """Load the AutoencoderKL ``source``; ``config``: a diffusers model folder (or hub id) whose
    ``vae`` config describes a single file's architecture."""
    from diffusers import AutoencoderKL

    path = Path(source).expanduser()
    try:
        if path.is_file():
            if path.suffix.lower() != ".safetensors":
                raise ModelError(f"vae {path.name}: only .safetensors files are loaded "
                                 "(pickle files can run code)")
            kwargs = {"config": config, "subfolder": "vae"} if config else {}
            vae = AutoencoderKL.from_single_file(str(path), dtype=dtype,
                                                 local_files_only=offline(), **kwargs)
        elif path.is_dir():
            sub = {} if (path / "config.json").is_file() else {"subfolder": "vae"}
            vae = AutoencoderKL.from_pretrained(str(path), dtype=dtype, **sub)
        else:
            vae = AutoencoderKL.from_pretrained(source, dtype=dtype, local_files_only=offline())
    except ModelError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        if not path.exists() and offline():
            raise ModelError(f"vae {source} is not in the Hugging Face cache and offline mode "
                             "is on (HF_HUB_OFFLINE=1)") from None
        raise ModelError(f"vae {source} could not be loaded: {first_line(exc)}") from exc
    return vae.to(device)
