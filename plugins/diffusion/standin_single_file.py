"""Save an SD 1.x pipeline as one original-layout (CompVis) ``.safetensors`` checkpoint.

The inverse of diffusers' single-file conversion, generalised from its
convert_diffusers_to_original_stable_diffusion script to any block count and layers per block,
so the tiny stand-in can be saved the way civitai-style checkpoints are shipped and loaded back
through ``from_single_file``.
"""

from __future__ import annotations

from pathlib import Path

_RESNET = [("in_layers.0", "norm1"), ("in_layers.2", "conv1"), ("out_layers.0", "norm2"),
           ("out_layers.3", "conv2"), ("emb_layers.1", "time_emb_proj"), ("skip_connection", "conv_shortcut")]
_UNET_TOP = [("time_embed.0.", "time_embedding.linear_1."), ("time_embed.2.", "time_embedding.linear_2."),
             ("input_blocks.0.0.", "conv_in."), ("out.0.", "conv_norm_out."), ("out.2.", "conv_out."),
             # SDXL's size and crop conditioning (its UNet alone is saved this way too).
             ("label_emb.0.0.", "add_embedding.linear_1."), ("label_emb.0.2.", "add_embedding.linear_2.")]


def _unet_prefixes(config) -> list[tuple[str, str]]:
    layers = config["layers_per_block"]
    n = len(config["block_out_channels"])
    down_attn = ["CrossAttn" in t for t in config["down_block_types"]]
    up_attn = ["CrossAttn" in t for t in config["up_block_types"]]
    pairs = []
    for i in range(n):
        for j in range(layers):
            pairs.append((f"input_blocks.{(layers + 1) * i + j + 1}.0.", f"down_blocks.{i}.resnets.{j}."))
            if down_attn[i]:
                pairs.append((f"input_blocks.{(layers + 1) * i + j + 1}.1.", f"down_blocks.{i}.attentions.{j}."))
        if i < n - 1:
            pairs.append((f"input_blocks.{(layers + 1) * (i + 1)}.0.op.", f"down_blocks.{i}.downsamplers.0.conv."))
        for j in range(layers + 1):
            pairs.append((f"output_blocks.{(layers + 1) * i + j}.0.", f"up_blocks.{i}.resnets.{j}."))
            if up_attn[i]:
                pairs.append((f"output_blocks.{(layers + 1) * i + j}.1.", f"up_blocks.{i}.attentions.{j}."))
        if i < n - 1:
            pairs.append((f"output_blocks.{(layers + 1) * i + layers}.{2 if up_attn[i] else 1}.",
                          f"up_blocks.{i}.upsamplers.0."))
    pairs.append(("middle_block.1.", "mid_block.attentions.0."))
    pairs += [(f"middle_block.{2 * j}.", f"mid_block.resnets.{j}.") for j in range(2)]
    return pairs


def convert_unet(state: dict, config) -> dict:
    """diffusers UNet state dict -> original layout (keys without the model prefix)."""
    prefixes = _unet_prefixes(config)
    out = {}
    for key, value in state.items():
        new = key
        for sd, hf in _UNET_TOP:
            if new.startswith(hf):
                new = sd + new[len(hf):]
        if "resnets" in key:
            for sd, hf in _RESNET:
                new = new.replace(hf, sd)
        for sd, hf in prefixes:
            new = new.replace(hf, sd)
        out[new] = value
    return out


def convert_vae(state: dict, config) -> dict:
    """diffusers VAE state dict -> original layout."""
    n = len(config["block_out_channels"])
    layers = config["layers_per_block"]
    pairs = [("nin_shortcut", "conv_shortcut"), ("norm_out", "conv_norm_out"), ("mid.attn_1.", "mid_block.attentions.0.")]
    for i in range(n):
        for j in range(layers):
            pairs.append((f"encoder.down.{i}.block.{j}.", f"encoder.down_blocks.{i}.resnets.{j}."))
        if i < n - 1:
            pairs.append((f"down.{i}.downsample.", f"down_blocks.{i}.downsamplers.0."))
            pairs.append((f"up.{n - 1 - i}.upsample.", f"up_blocks.{i}.upsamplers.0."))
        for j in range(layers + 1):
            pairs.append((f"decoder.up.{n - 1 - i}.block.{j}.", f"decoder.up_blocks.{i}.resnets.{j}."))
    pairs += [(f"mid.block_{i + 1}.", f"mid_block.resnets.{i}.") for i in range(2)]
    attn = [("norm.", "group_norm."), ("q.", "to_q."), ("k.", "to_k."), ("v.", "to_v."), ("proj_out.", "to_out.0.")]
    out = {}
    for key, value in state.items():
        new = key
        for sd, hf in pairs:
            new = new.replace(hf, sd)
        if "attentions" in key:
            for sd, hf in attn:
                new = new.replace(hf, sd)
            if new.endswith(("q.weight", "k.weight", "v.weight", "proj_out.weight")) and value.ndim == 2:
                value = value.reshape(*value.shape, 1, 1)  # linear -> 1x1 conv, as the original stores it
        out[new] = value
    return out


def save_single_file(pipe, target: str | Path) -> Path:
    """Write ``pipe`` (SD 1.x) as one original-layout .safetensors checkpoint at ``target``."""
    from safetensors.torch import save_file

    state = {}
    for key, value in convert_unet(pipe.unet.state_dict(), pipe.unet.config).items():
        state["model.diffusion_model." + key] = value
    for key, value in convert_vae(pipe.vae.state_dict(), pipe.vae.config).items():
        state["first_stage_model." + key] = value
    for key, value in pipe.text_encoder.state_dict().items():
        # transformers 5 names CLIP weights without "text_model."; the original layout has it.
        key = key if key.startswith("text_model.") else "text_model." + key
        state["cond_stage_model.transformer." + key] = value
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(target))
    return target
