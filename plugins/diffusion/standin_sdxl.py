"""A tiny, randomly initialised SDXL pipeline: both text encoders and tokenizers, text-time embeddings.

Like the SD 1.x stand-in it exists so every SDXL code path (two encoders, pooled embeddings,
micro-conditioning, the 1024 px native size) runs in tests without downloading a model.
"""

from __future__ import annotations


def build_standin_sdxl_pipeline(seed: int = 0, in_channels: int = 4):
    """Build the tiny SDXL text-to-image pipeline in memory (random weights, fixed seed)."""
    import torch
    from diffusers import (
        EulerDiscreteScheduler,
        StableDiffusionXLInpaintPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTokenizer

    from photobatch.plugins.diffusion.standin import build_text_encoder, build_tokenizer_files, build_vae

    torch.manual_seed(seed)
    vocab, merges = build_tokenizer_files()
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        # 128 latents x 8 = 1024 px, the SDXL native size (the weights do not depend on it).
        sample_size=128,
        in_channels=in_channels,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1),
        # 6 micro-conditioning numbers x 8 + the pooled text embedding (32).
        projection_class_embeddings_input_dim=80,
        cross_attention_dim=64,
        norm_num_groups=32,
    )
    text_encoder = build_text_encoder(vocab)
    text_encoder_2 = build_text_encoder(vocab, projection=True)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        steps_offset=1,
        timestep_spacing="leading",
    )
    cls = StableDiffusionXLInpaintPipeline if in_channels == 9 else StableDiffusionXLPipeline
    return cls(
        vae=build_vae(),
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77),
        tokenizer_2=CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77),
        unet=unet,
        scheduler=scheduler,
    )
