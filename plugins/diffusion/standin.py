"""A tiny, randomly initialised Stable Diffusion 1.x pipeline saved as a diffusers folder.

It stands in for a real model where no weights can be downloaded (tests, CI, the demo on a
fresh machine). It is loaded back through exactly the code that loads a real model, so every
path from the folder to the output is exercised; its pictures are colour noise, not edits.
"""

from __future__ import annotations

import json
from pathlib import Path

STANDIN_MARKER = "photobatch-standin.json"

# Words the stand-in tokenizer knows as whole tokens; anything else falls back to characters,
# which is what a real CLIP BPE tokenizer does with rare words too.
_WORDS = (
    "a photo of the and with natural colours colors balanced exposure neutral white balance "
    "clean detailed sharp realistic skin portrait face winter spring summer autumn snow golden "
    "hour blue night overcast light sky style oversaturated blurry noise artifacts cartoon "
    "painting lowres jpeg watermark text high quality professional photograph dslr"
).split()


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def build_tokenizer_files() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Return a CLIP BPE vocabulary and merge list: all bytes, plus whole-word merges."""
    chars = list(_bytes_to_unicode().values())
    vocab_tokens = chars + [c + "</w>" for c in chars]
    merges: list[tuple[str, str]] = []
    seen = set(vocab_tokens)
    for word in _WORDS:
        # Merge left to right: "p h o t o</w>" -> "ph o t o</w>" -> ... -> "photo</w>".
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        current = pieces[0]
        for piece in pieces[1:]:
            merged = current + piece
            if merged not in seen:
                merges.append((current, piece))
                vocab_tokens.append(merged)
                seen.add(merged)
            current = merged
    vocab_tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(vocab_tokens)}
    return vocab, merges


def build_text_encoder(vocab: dict[str, int], projection: bool = False):
    """A 5-layer CLIP text encoder with hidden size 32 (``projection``: the SDXL second encoder)."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    text_config = CLIPTextConfig(
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=5,
        layer_norm_eps=1e-5,
        vocab_size=len(vocab),
        max_position_embeddings=77,
        projection_dim=32,
    )
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(text_config)


def build_vae():
    """Four blocks so the VAE downsamples 8x like a real SD VAE (and runs fast on a CPU)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=[8, 16, 32, 32],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        latent_channels=4,
        norm_num_groups=8,
        layers_per_block=1,
        sample_size=512,
    )


def build_sd_scheduler():
    """The same schedule a real SD 1.5 folder ships."""
    from diffusers import PNDMScheduler

    return PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        skip_prk_steps=True,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def build_standin_pipeline(seed: int = 0, in_channels: int = 4, lcm: bool = False):
    """Build the tiny SD 1.x text-to-image pipeline in memory (random weights, fixed seed).

    ``in_channels=9`` builds an inpainting model (latents + mask + masked-image latents);
    ``lcm`` a latent-consistency-distilled one (a guidance embedding, the LCM scheduler, saved
    as diffusers' LatentConsistencyModelPipeline, as LCM checkpoints are).
    """
    import torch
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTokenizer

    torch.manual_seed(seed)
    vocab, merges = build_tokenizer_files()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    text_encoder = build_text_encoder(vocab)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=64,
        in_channels=in_channels,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=(2, 4),
        norm_num_groups=32,
        time_cond_proj_dim=32 if lcm else None,
    )
    vae = build_vae()
    scheduler = build_sd_scheduler()
    if lcm:
        from diffusers import LatentConsistencyModelPipeline, LCMScheduler

        return LatentConsistencyModelPipeline(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
            scheduler=LCMScheduler.from_config(scheduler.config), safety_checker=None,
            feature_extractor=None, requires_safety_checker=False)
    cls = StableDiffusionInpaintPipeline if in_channels == 9 else StableDiffusionPipeline
    return cls(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def is_standin(model_dir: str | Path) -> bool:
    """True when the folder holds the stand-in model (its pictures are not meaningful)."""
    return (Path(model_dir) / STANDIN_MARKER).is_file()


def save_standin_model(target: str | Path, seed: int = 0, kind: str = "sd1") -> Path:
    """Save a stand-in pipeline as a diffusers folder at ``target`` (reused when present).

    ``kind``: "sd1" (the default), "sd1-inpaint" (a 9-channel inpainting UNet), "sd1-lcm" (an
    LCM-distilled one), "sdxl" or "sdxl-refiner" (the second text encoder only,
    aesthetic-score conditioning), "flux" (FLUX.1 [dev]'s layout), "flux-schnell" (no guidance
    embedding), "flux-kontext" (FLUX.1 Kontext [dev]), "flux-fill" (FLUX.1 Fill [dev]), "sd3",
    "zimage" (Z-Image Turbo's layout), "flux2" (FLUX.2 [klein], distilled), "flux2-base",
    "flux2-dev" (FLUX.2 [dev]),
    "qwenimage", "qwenimage-edit" (Qwen-Image-Edit) or "qwenimage-edit-plus" (its 2509 layout).
    """
    target = Path(target)
    if is_standin(target) and (target / "model_index.json").is_file():
        return target
    if kind == "sdxl":
        from photobatch.plugins.diffusion.standin_sdxl import build_standin_sdxl_pipeline

        pipe = build_standin_sdxl_pipeline(seed=seed)
    elif kind == "sdxl-refiner":
        from photobatch.plugins.diffusion.standin_sdxl import build_standin_sdxl_refiner

        pipe = build_standin_sdxl_refiner(seed=seed)
    elif kind in ("flux", "flux-schnell", "flux-kontext", "flux-fill"):
        from photobatch.plugins.diffusion.standin_flow import build_standin_flux_pipeline

        pipe = build_standin_flux_pipeline(seed=seed, guidance=kind != "flux-schnell",
                                           fill=kind == "flux-fill")
        if kind == "flux-kontext":
            from diffusers import FluxKontextPipeline

            # Kontext [dev] is FLUX.1 [dev]'s architecture, saved as its own pipeline.
            pipe = FluxKontextPipeline(**pipe.components)
    elif kind == "sd3":
        from photobatch.plugins.diffusion.standin_flow import build_standin_sd3_pipeline

        pipe = build_standin_sd3_pipeline(seed=seed)
    elif kind in ("flux2", "flux2-base"):
        from photobatch.plugins.diffusion.standin_flux2 import build_standin_flux2_pipeline

        pipe = build_standin_flux2_pipeline(seed=seed, distilled=kind == "flux2")
    elif kind == "flux2-dev":
        from photobatch.plugins.diffusion.standin_flux2 import build_standin_flux2_dev_pipeline

        pipe = build_standin_flux2_dev_pipeline(seed=seed)
    elif kind == "qwenimage":
        from photobatch.plugins.diffusion.standin_qwenimage import build_standin_qwenimage_pipeline

        pipe = build_standin_qwenimage_pipeline(seed=seed)
    elif kind in ("qwenimage-edit", "qwenimage-edit-plus"):
        from photobatch.plugins.diffusion.standin_qwenimage import build_standin_qwenimage_edit_pipeline

        pipe = build_standin_qwenimage_edit_pipeline(seed=seed)
        if kind == "qwenimage-edit-plus":
            from diffusers import QwenImageEditPlusPipeline

            # Edit 2509 and later: the same architecture, saved as Plus's pipeline.
            pipe = QwenImageEditPlusPipeline(**pipe.components)
    elif kind == "zimage":
        from photobatch.plugins.diffusion.standin_zimage import build_standin_zimage_pipeline

        pipe = build_standin_zimage_pipeline(seed=seed)
    else:
        pipe = build_standin_pipeline(seed=seed, in_channels=9 if kind == "sd1-inpaint" else 4,
                                      lcm=kind == "sd1-lcm")
    target.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(str(target), safe_serialization=True)
    # Also the classic slow-tokenizer files, as real SD folders ship them.
    vocab, merges = build_tokenizer_files()
    # (FLUX.1's tokenizer_2 is T5's and the Qwen-conditioned models' tokenizer Qwen's, each
    # saved whole in its tokenizer.json.)
    if kind.startswith("qwenimage-edit"):
        from photobatch.plugins.diffusion.standin_qwenimage import name_processor_as_qwens

        name_processor_as_qwens(target)
    if kind == "flux2-dev":
        from photobatch.plugins.diffusion.standin_flux2 import name_tokenizer_as_bfls

        name_tokenizer_as_bfls(target)
    folders = (() if kind in ("zimage", "flux2", "flux2-base", "flux2-dev") or kind.startswith("qwenimage")
               else ("tokenizer",) + (("tokenizer_2",) if not kind.startswith("flux") else ()))
    for folder in folders:
        if not (target / folder).is_dir():
            continue
        (target / folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
        (target / folder / "merges.txt").write_text(
            "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8"
        )
    (target / STANDIN_MARKER).write_text(
        json.dumps(
            {
                "what": "photobatch stand-in model: tiny, random weights, output is not meaningful",
                "seed": seed,
                "kind": kind,
            },
            indent=2,
        )
    )
    return target
