"""A tiny, randomly initialised Qwen-Image pipeline: its MMDiT transformer reading the hidden
states of a Qwen2.5-VL model (its tokenizer from ``standin_qwen``), and its Wan-style VAE.

Laid out as Qwen/Qwen-Image's folder is (``QwenImagePipeline`` with a
``Qwen2_5_VLForConditionalGeneration`` and a ``Qwen2Tokenizer``), so the real loading code reads
it; its pictures are colour noise.
"""

from __future__ import annotations


def build_standin_qwenimage_pipeline(seed: int = 0):
    """Build a tiny Qwen-Image text-to-image pipeline in memory, with Qwen-Image's scheduler
    settings (exponential time shift by the image's size)."""
    import torch
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImagePipeline,
        QwenImageTransformer2DModel,
    )

    from photobatch.plugins.diffusion.standin_qwen import build_qwen_tokenizer

    torch.manual_seed(seed)
    tokenizer = build_qwen_tokenizer()
    encoder = _qwen_vl_encoder(tokenizer)
    # 4 latent channels, 2x2 patches: 16 a token.
    transformer = QwenImageTransformer2DModel(
        patch_size=2, in_channels=16, out_channels=4, num_layers=2, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=16, guidance_embeds=False, axes_dims_rope=(8, 4, 4))
    # Downsampling 8x, as Qwen-Image's does (three stages).
    vae = AutoencoderKLQwenImage(base_dim=16, z_dim=4, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
                                 temperal_downsample=[False, True, True], latents_mean=[0.0] * 4,
                                 latents_std=[1.0] * 4)
    scheduler = FlowMatchEulerDiscreteScheduler(
        base_image_seq_len=256, base_shift=0.5, max_image_seq_len=8192, max_shift=0.9, shift=1.0,
        shift_terminal=0.02, use_dynamic_shifting=True, time_shift_type="exponential")
    return QwenImagePipeline(scheduler=scheduler, vae=vae, text_encoder=encoder, tokenizer=tokenizer,
                             transformer=transformer)


def _qwen_vl_encoder(tokenizer, **vision_tokens):
    """A tiny Qwen2.5-VL (two text layers, a two-block vision tower) for ``tokenizer``;
    ``vision_tokens`` tell it the ids of its vision tokens (``image_token_id=...``), where
    its processor gives it pictures."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    special = tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>"])
    text = {"hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 2,
            "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": len(tokenizer),
            "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
            "rope_theta": 1000000.0, "bos_token_id": special[0], "eos_token_id": special[1]}
    return Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(
        text_config=text, vision_config={"depth": 2, "hidden_size": 16, "intermediate_size": 16,
                                         "num_heads": 2, "out_hidden_size": 16},
        hidden_size=16, vocab_size=len(tokenizer), bos_token_id=special[0], eos_token_id=special[1],
        **vision_tokens))


def build_standin_qwenimage_edit_pipeline(seed: int = 0):
    """A tiny Qwen-Image-Edit pipeline: Qwen-Image's stand-in with the Qwen2.5-VL encoder told
    its vision tokens, and the processor it reads the photo through (an image processor and
    the tokenizer with Qwen's vision tokens)."""
    import torch
    from diffusers import QwenImageEditPipeline
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from photobatch.plugins.diffusion.qwen_edit import ImageOnlyQwen2VLProcessor
    from photobatch.plugins.diffusion.standin_qwen import _SPECIAL, build_qwen_tokenizer

    base = build_standin_qwenimage_pipeline(seed)
    torch.manual_seed(seed + 1)
    tokenizer = build_qwen_tokenizer()
    vision = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tokenizer.add_special_tokens({"additional_special_tokens": [*_SPECIAL[1:], *vision]})
    ids = dict(zip(["vision_start", "vision_end", "image", "video"], tokenizer.convert_tokens_to_ids(vision)))
    encoder = _qwen_vl_encoder(tokenizer, **{f"{name}_token_id": value for name, value in ids.items()})
    processor = ImageOnlyQwen2VLProcessor(image_processor=Qwen2VLImageProcessorPil(), tokenizer=tokenizer)
    return QwenImageEditPipeline(scheduler=base.scheduler, vae=base.vae, text_encoder=encoder,
                                 tokenizer=tokenizer, processor=processor, transformer=base.transformer)


def name_processor_as_qwens(folder) -> None:
    """Lay the saved processor out as Qwen's own folders have it (written by transformers 4):
    model_index.json naming transformers' Qwen2VLProcessor, not the class it was built with; the
    image processor's settings in preprocessor_config.json and the video processor's beside
    them, no processor_config.json."""
    import json
    from pathlib import Path

    index_path = Path(folder) / "model_index.json"
    index = json.loads(index_path.read_text(encoding="utf-8"))
    index["processor"] = ["transformers", "Qwen2VLProcessor"]
    index_path.write_text(json.dumps(index, indent=2), encoding="utf-8")
    processor = Path(folder) / "processor"
    config = json.loads((processor / "processor_config.json").read_text(encoding="utf-8"))
    (processor / "processor_config.json").unlink()
    image = {**config["image_processor"], "image_processor_type": "Qwen2VLImageProcessor",
             "processor_class": "Qwen2VLProcessor"}
    (processor / "preprocessor_config.json").write_text(json.dumps(image, indent=2), encoding="utf-8")
    video = {key: value for key, value in image.items() if key != "image_processor_type"}
    video["video_processor_type"] = "Qwen2VLVideoProcessor"
    (processor / "video_preprocessor_config.json").write_text(json.dumps(video, indent=2), encoding="utf-8")
