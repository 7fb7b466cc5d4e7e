"""Save a randomly initialised pipeline with Stable Diffusion 1.5's exact architecture.

Real weights cannot be downloaded on the benchmark machines, but the cost of a pipeline call
is set by the architecture, not by the weights' values: this folder (UNet 860M parameters,
VAE 84M, CLIP ViT-L/14 text encoder layers, and the safety checker SD 1.5's folder ships, a
CLIP ViT-L/14 vision model, 304M; 5.1 GB in fp32) runs the computation a real SD 1.5 runs, so ``bench/runner.py --model THIS_FOLDER`` measures what a user with a real
SD 1.5 gets on the machine. Its pictures are meaningless.

    .venv/bin/python bench/random_sd15.py /tmp/random-sd15
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def build_random_sd15(seed: int = 0):
    """The SD 1.5 pipeline built from its published configuration, random weights."""
    import torch
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from photobatch.plugins.diffusion.standin import build_sd_scheduler, build_tokenizer_files

    torch.manual_seed(seed)
    vocab, merges = build_tokenizer_files()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=768, intermediate_size=3072, num_attention_heads=12,
        num_hidden_layers=12, max_position_embeddings=77, hidden_act="quick_gelu",
        projection_dim=768, bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"]))
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=768, attention_head_dim=8)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
        block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32, sample_size=512)
    # The safety checker of runwayml/stable-diffusion-v1-5 (its config: CLIP ViT-L/14 vision).
    safety_checker = StableDiffusionSafetyChecker(CLIPConfig(
        vision_config=dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16,
                           num_hidden_layers=24, image_size=224, patch_size=14),
        projection_dim=768))
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=build_sd_scheduler(), safety_checker=safety_checker,
                                   feature_extractor=CLIPImageProcessor(crop_size=224, size=224),
                                   requires_safety_checker=True)


def main() -> None:
    """Build and save the folder named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", type=Path)
    target = parser.parse_args().target
    pipe = build_random_sd15()
    pipe.save_pretrained(str(target), safe_serialization=True)
    (target / "random-weights.json").write_text(json.dumps(
        {"what": "SD 1.5 architecture with random weights, for timing only"}, indent=2))
    params = {name: sum(p.numel() for p in getattr(pipe, name).parameters()) / 1e6
              for name in ("unet", "vae", "text_encoder", "safety_checker")}
    print(f"saved {target}: " + ", ".join(f"{k} {v:.0f}M parameters" for k, v in params.items()))


if __name__ == "__main__":
    main()
