"""A tiny, randomly initialised SDXL pipeline: both text encoders and tokenizers, text-time embeddings.

Like the SD 1.x stand-in it exists so every SDXL code path (two encoders, pooled embeddings,
micro-conditioning, the 1024 px native size) runs in tests without downloading a model.
"""

from __future__ import annotations


def _unet(in_channels: int, time_ids: int, cross_attention_dim: int):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
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
        # The micro-conditioning numbers x 8 + the pooled text embedding (32).
        projection_class_embeddings_input_dim=time_ids * 8 + 32,
        cross_attention_dim=cross_attention_dim,
        norm_num_groups=32,
    )


def _scheduler():
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        steps_offset=1,
        timestep_spacing="leading",
    )


def build_standin_sdxl_pipeline(seed: int = 0, in_channels: int = 4):
    """Build the tiny SDXL text-to-image pipeline in memory (random weights, fixed seed)."""
    import torch
    from diffusers import StableDiffusionXLInpaintPipeline, StableDiffusionXLPipeline
    from transformers import CLIPTokenizer

    from photobatch.plugins.diffusion.standin import build_text_encoder, build_tokenizer_files, build_vae

    torch.manual_seed(seed)
    vocab, merges = build_tokenizer_files()
    # 6 micro-conditioning numbers; both encoders' states side by side (32 + 32).
    unet = _unet(in_channels, time_ids=6, cross_attention_dim=64)
    text_encoder = build_text_encoder(vocab)
    text_encoder_2 = build_text_encoder(vocab, projection=True)
    scheduler = _scheduler()
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


def build_standin_sdxl_refiner(seed: int = 0):
    """Build a tiny SDXL refiner in memory, laid out as the real one: the second text encoder
    only, and 5 micro-conditioning numbers (the aesthetic score in place of the target size)."""
    import torch
    from diffusers import StableDiffusionXLImg2ImgPipeline
    from transformers import CLIPTokenizer

    from photobatch.plugins.diffusion.standin import build_text_encoder, build_tokenizer_files, build_vae

    torch.manual_seed(seed)
    vocab, merges = build_tokenizer_files()
    return StableDiffusionXLImg2ImgPipeline(
        vae=build_vae(),
        text_encoder=None,
        text_encoder_2=build_text_encoder(vocab, projection=True),
        tokenizer=None,
        tokenizer_2=CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77),
        unet=_unet(4, time_ids=5, cross_attention_dim=32),
        scheduler=_scheduler(),
        requires_aesthetics_score=True,
        force_zeros_for_empty_prompt=False,
    )
