"""A tiny, randomly initialised Z-Image pipeline: a single-stream transformer reading the hidden
states of a Qwen3 text encoder (its tokenizer from ``standin_qwen``), and FLUX.1's 16-channel
VAE.

Laid out as Tongyi-MAI/Z-Image-Turbo's folder is (``ZImagePipeline`` with a ``Qwen3Model`` and a
``Qwen2Tokenizer``), so the real loading code reads it; its pictures are colour noise.
"""

from __future__ import annotations

from pathlib import Path


def build_standin_zimage_pipeline(seed: int = 0):
    """Build a tiny Z-Image text-to-image pipeline in memory (Z-Image Turbo's layout and
    scheduler: a fixed shift of 3)."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel
    from transformers import Qwen3Config, Qwen3Model

    from photobatch.plugins.diffusion.standin_flow import build_flow_vae
    from photobatch.plugins.diffusion.standin_qwen import build_qwen_tokenizer

    torch.manual_seed(seed)
    tokenizer = build_qwen_tokenizer()
    # Two layers at least: Z-Image reads the second-to-last hidden state.
    encoder = Qwen3Model(Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=1024))
    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=32, n_layers=2,
        n_refiner_layers=1, n_heads=2, n_kv_heads=2, cap_feat_dim=32, axes_dims=[4, 4, 8],
        axes_lens=[256, 128, 128])
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=False)
    return ZImagePipeline(scheduler=scheduler, vae=build_flow_vae(), text_encoder=encoder,
                          tokenizer=tokenizer, transformer=transformer)


def save_zimage_single_file(transformer, target: str | Path, prefix: str = "") -> None:
    """Save a Z-Image ``transformer`` (diffusers layout) as a single file in Tongyi's original
    layout (fused q/k/v; ``prefix`` "model.diffusion_model." gives ComfyUI's naming): how Z-Image
    fine-tunes are shared. diffusers' single-file loader reads it back into the same weights."""
    import torch
    from safetensors.torch import save_file

    state = {k: v.detach().clone().contiguous() for k, v in transformer.state_dict().items()}
    renames = ((".attention.to_out.0.", ".attention.out."), (".attention.norm_k.", ".attention.k_norm."),
               (".attention.norm_q.", ".attention.q_norm."), ("all_final_layer.2-1.", "final_layer."),
               ("all_x_embedder.2-1.", "x_embedder."))
    out = {}
    for key, value in state.items():
        if ".attention.to_k." in key or ".attention.to_v." in key:
            continue
        if ".attention.to_q." in key:
            parts = [state[key.replace("to_q", f"to_{x}")] for x in "qkv"]
            key, value = key.replace(".attention.to_q.", ".attention.qkv."), torch.cat(parts)
        for ours, theirs in renames:
            key = key.replace(ours, theirs)
        out[prefix + key] = value
    save_file(out, str(target))
