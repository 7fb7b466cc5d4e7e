"""Tiny, randomly initialised FLUX.1 and SD 3.x pipelines: flow-matching transformers, CLIP and T5
text encoders with their tokenizers, a 16-channel VAE.

Like the SD stand-ins they exist so that every flow-model code path (loading, prompts through
two or three encoders, flow-matching samplers, packed latents) runs in tests without
downloading a model; their pictures are colour noise.
"""

from __future__ import annotations


def build_t5_tokenizer():
    """A T5 (Unigram, SentencePiece-style) tokenizer built in code: the stand-in's words whole,
    every other character on its own, as a real T5 vocabulary splits rare words."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    from photobatch.plugins.diffusion.standin import _WORDS, _bytes_to_unicode

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [("▁" + word, -1.0) for word in _WORDS]
    pieces += [(char, -5.0) for char in _bytes_to_unicode().values()]
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=2))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)])
    return T5TokenizerFast(tokenizer_object=tokenizer, eos_token="</s>", pad_token="<pad>",
                           unk_token="<unk>", extra_ids=0, model_max_length=512)


def build_t5_encoder(vocab_size: int, d_model: int = 32):
    """A 2-layer T5 encoder (FLUX.1 and SD 3.x read T5-XXL's hidden states)."""
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=vocab_size, d_model=d_model, d_ff=37, d_kv=8,
                                   num_layers=2, num_heads=4, relative_attention_num_buckets=8,
                                   decoder_start_token_id=0, pad_token_id=0, eos_token_id=1))


def build_flow_vae():
    """A 16-channel VAE that downsamples 8x, with the shift and scale FLUX.1's and SD 3's carry."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=[8, 16, 32, 32], in_channels=3, out_channels=3,
                         down_block_types=["DownEncoderBlock2D"] * 4,
                         up_block_types=["UpDecoderBlock2D"] * 4, latent_channels=16,
                         norm_num_groups=8, layers_per_block=1, sample_size=1024,
                         use_quant_conv=False, use_post_quant_conv=False,
                         shift_factor=0.1159, scaling_factor=0.3611)


def _seeded_tokenizers(seed: int):
    """Seed torch for a stand-in's weights; return the CLIP vocabulary, a CLIP tokenizer and a
    T5 tokenizer, which every flow stand-in uses."""
    import torch
    from transformers import CLIPTokenizer

    from photobatch.plugins.diffusion.standin import build_tokenizer_files

    torch.manual_seed(seed)
    vocab, merges = build_tokenizer_files()
    return (vocab, CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77),
            build_t5_tokenizer())


def build_standin_flux_pipeline(seed: int = 0, guidance: bool = True, fill: bool = False):
    """Build a tiny FLUX.1 text-to-image pipeline in memory: ``guidance`` gives it [dev]'s
    distilled-guidance embedding, without it it is laid out as [schnell]; ``fill`` makes it
    FLUX.1 Fill (its transformer also reads the masked photo's latents and the mask)."""
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        FluxFillPipeline,
        FluxPipeline,
        FluxTransformer2DModel,
    )

    from photobatch.plugins.diffusion.standin import build_text_encoder

    vocab, clip_tokenizer, t5_tokenizer = _seeded_tokenizers(seed)
    # Fill's input: the packed latents (16 x 4), the masked photo's (16 x 4) and the mask, 8 x 8
    # pixels a latent, packed (64 x 4).
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=384 if fill else 64, out_channels=64 if fill else None, num_layers=1,
        num_single_layers=1, attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
        pooled_projection_dim=32, axes_dims_rope=[4, 4, 8], guidance_embeds=guidance)
    # FLUX.1's own schedule: shifted by the image's size (dynamic shifting).
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
        base_image_seq_len=256, max_image_seq_len=4096)
    return (FluxFillPipeline if fill else FluxPipeline)(
        scheduler=scheduler, vae=build_flow_vae(), transformer=transformer,
        text_encoder=build_text_encoder(vocab), tokenizer=clip_tokenizer,
        text_encoder_2=build_t5_encoder(len(t5_tokenizer)), tokenizer_2=t5_tokenizer)


def build_standin_sd3_pipeline(seed: int = 0):
    """Build a tiny SD 3.x text-to-image pipeline in memory: two CLIP encoders with projection
    and T5, an MMDiT transformer on 2x2 patches."""
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )

    from photobatch.plugins.diffusion.standin import build_text_encoder

    vocab, clip_tokenizer, t5_tokenizer = _seeded_tokenizers(seed)
    transformer = SD3Transformer2DModel(
        sample_size=128, patch_size=2, in_channels=16, num_layers=1, attention_head_dim=8,
        num_attention_heads=4, joint_attention_dim=32, caption_projection_dim=32,
        pooled_projection_dim=64, out_channels=16)
    return StableDiffusion3Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=build_flow_vae(),
        transformer=transformer,
        text_encoder=build_text_encoder(vocab, projection=True), tokenizer=clip_tokenizer,
        text_encoder_2=build_text_encoder(vocab, projection=True), tokenizer_2=clip_tokenizer,
        text_encoder_3=build_t5_encoder(len(t5_tokenizer)), tokenizer_3=t5_tokenizer)


def save_sd3_single_file(transformer, target, prefix: str = "") -> None:
    """Save an SD 3.x ``transformer`` (diffusers layout) as a single file in Stability's
    original layout (``prefix`` "model.diffusion_model." gives ComfyUI's all-in-one naming):
    what a shared fine-tune looks like. diffusers' single-file loader reads it back into the same
    weights."""
    import torch
    from safetensors.torch import save_file

    sd = {k: v.detach().clone().contiguous() for k, v in transformer.state_dict().items()}

    def swap(weight):  # shift and scale trade places between the layouts
        first, second = weight.chunk(2, dim=0)
        return torch.cat([second, first], dim=0)

    out = {"pos_embed": sd["pos_embed.pos_embed"],
           "context_embedder.weight": sd["context_embedder.weight"],
           "context_embedder.bias": sd["context_embedder.bias"],
           "final_layer.linear.weight": sd["proj_out.weight"],
           "final_layer.linear.bias": sd["proj_out.bias"]}
    for ours, theirs in (("x_embedder.proj", "pos_embed.proj"),
                         ("t_embedder.mlp.0", "time_text_embed.timestep_embedder.linear_1"),
                         ("t_embedder.mlp.2", "time_text_embed.timestep_embedder.linear_2"),
                         ("y_embedder.mlp.0", "time_text_embed.text_embedder.linear_1"),
                         ("y_embedder.mlp.2", "time_text_embed.text_embedder.linear_2")):
        for part in ("weight", "bias"):
            out[f"{ours}.{part}"] = sd[f"{theirs}.{part}"]
    for part in ("weight", "bias"):
        out[f"final_layer.adaLN_modulation.1.{part}"] = swap(sd[f"norm_out.linear.{part}"])
    layers = transformer.config.num_layers
    for i in range(layers):
        block, last = f"joint_blocks.{i}", i == layers - 1
        here = f"transformer_blocks.{i}"
        for part in ("weight", "bias"):
            out[f"{block}.x_block.attn.qkv.{part}"] = torch.cat(
                [sd[f"{here}.attn.to_{x}.{part}"] for x in "qkv"])
            out[f"{block}.context_block.attn.qkv.{part}"] = torch.cat(
                [sd[f"{here}.attn.add_{x}_proj.{part}"] for x in "qkv"])
            out[f"{block}.x_block.attn.proj.{part}"] = sd[f"{here}.attn.to_out.0.{part}"]
            out[f"{block}.x_block.adaLN_modulation.1.{part}"] = sd[f"{here}.norm1.linear.{part}"]
            context_norm = sd[f"{here}.norm1_context.linear.{part}"]
            out[f"{block}.context_block.adaLN_modulation.1.{part}"] = (swap(context_norm) if last
                                                                        else context_norm)
            out[f"{block}.x_block.mlp.fc1.{part}"] = sd[f"{here}.ff.net.0.proj.{part}"]
            out[f"{block}.x_block.mlp.fc2.{part}"] = sd[f"{here}.ff.net.2.{part}"]
            if not last:
                out[f"{block}.context_block.attn.proj.{part}"] = sd[f"{here}.attn.to_add_out.{part}"]
                out[f"{block}.context_block.mlp.fc1.{part}"] = sd[f"{here}.ff_context.net.0.proj.{part}"]
                out[f"{block}.context_block.mlp.fc2.{part}"] = sd[f"{here}.ff_context.net.2.{part}"]
    save_file({prefix + k: v for k, v in out.items()}, str(target))


def build_wide_flux_transformer(seed: int = 0, fill: bool = False):
    """A FLUX.1 transformer as wide as the real one (3072: diffusers' single-file converter for
    FLUX.1 assumes that width) but one block deep of each kind, reading the stand-ins' small
    text encoders: the smallest FLUX.1 a single file can hold (530M parameters; ``fill``: FLUX.1
    Fill's, which also reads the masked photo and the mask). Its weights are drawn from
    N(0, 0.02), norms' scales 1: three times faster than the layers' own initialisation."""
    import torch
    from diffusers import FluxTransformer2DModel

    with torch.device("meta"):
        transformer = FluxTransformer2DModel(
            patch_size=1, in_channels=384 if fill else 64, out_channels=64 if fill else None,
            num_layers=1, num_single_layers=1, attention_head_dim=128, num_attention_heads=24,
            joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[16, 56, 56],
            guidance_embeds=True)
    transformer = transformer.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, weight in transformer.named_parameters():
            if "norm" in name and weight.ndim == 1:
                weight.fill_(1.0)
            else:
                weight.normal_(0.0, 0.02, generator=generator)
    return transformer


def save_flux_single_file(transformer, target, prefix: str = "", dtype=None) -> None:
    """Save a FLUX.1 ``transformer`` (diffusers layout) as a single file in BFL's layout, as
    flux1-dev.safetensors and its fine-tunes are shared (``prefix`` "model.diffusion_model."
    gives ComfyUI's all-in-one naming; ``dtype`` torch.bfloat16 stores it as BFL does).
    diffusers' single-file loader reads it back into the same weights."""
    import torch
    from safetensors.torch import save_file

    sd = {k: v.detach().to(dtype or v.dtype).contiguous() for k, v in transformer.state_dict().items()}
    out = {}

    def take(theirs, ours):
        for part in ("weight", "bias"):
            if f"{ours}.{part}" in sd:
                out[f"{theirs}.{part}"] = sd[f"{ours}.{part}"]

    for theirs, ours in (("time_in", "time_text_embed.timestep_embedder"),
                         ("vector_in", "time_text_embed.text_embedder"),
                         ("guidance_in", "time_text_embed.guidance_embedder")):
        take(f"{theirs}.in_layer", f"{ours}.linear_1")
        take(f"{theirs}.out_layer", f"{ours}.linear_2")
    take("txt_in", "context_embedder")
    take("img_in", "x_embedder")
    take("final_layer.linear", "proj_out")
    for part in ("weight", "bias"):  # shift and scale trade places between the layouts
        scale, shift = sd[f"norm_out.linear.{part}"].chunk(2, dim=0)
        out[f"final_layer.adaLN_modulation.1.{part}"] = torch.cat([shift, scale])
    for i in range(transformer.config.num_layers):
        block, here = f"double_blocks.{i}", f"transformer_blocks.{i}"
        take(f"{block}.img_mod.lin", f"{here}.norm1.linear")
        take(f"{block}.txt_mod.lin", f"{here}.norm1_context.linear")
        for part in ("weight", "bias"):
            out[f"{block}.img_attn.qkv.{part}"] = torch.cat([sd[f"{here}.attn.to_{x}.{part}"] for x in "qkv"])
            out[f"{block}.txt_attn.qkv.{part}"] = torch.cat(
                [sd[f"{here}.attn.add_{x}_proj.{part}"] for x in "qkv"])
        for theirs, ours in (("img_attn.norm.query_norm", "attn.norm_q"), ("img_attn.norm.key_norm", "attn.norm_k"),
                             ("txt_attn.norm.query_norm", "attn.norm_added_q"),
                             ("txt_attn.norm.key_norm", "attn.norm_added_k")):
            out[f"{block}.{theirs}.scale"] = sd[f"{here}.{ours}.weight"]
        take(f"{block}.img_mlp.0", f"{here}.ff.net.0.proj")
        take(f"{block}.img_mlp.2", f"{here}.ff.net.2")
        take(f"{block}.txt_mlp.0", f"{here}.ff_context.net.0.proj")
        take(f"{block}.txt_mlp.2", f"{here}.ff_context.net.2")
        take(f"{block}.img_attn.proj", f"{here}.attn.to_out.0")
        take(f"{block}.txt_attn.proj", f"{here}.attn.to_add_out")
    for i in range(transformer.config.num_single_layers):
        block, here = f"single_blocks.{i}", f"single_transformer_blocks.{i}"
        take(f"{block}.modulation.lin", f"{here}.norm.linear")
        for part in ("weight", "bias"):
            out[f"{block}.linear1.{part}"] = torch.cat(
                [sd[f"{here}.attn.to_{x}.{part}"] for x in "qkv"] + [sd[f"{here}.proj_mlp.{part}"]])
        out[f"{block}.norm.query_norm.scale"] = sd[f"{here}.attn.norm_q.weight"]
        out[f"{block}.norm.key_norm.scale"] = sd[f"{here}.attn.norm_k.weight"]
        take(f"{block}.linear2", f"{here}.proj_out")
    save_file({prefix + k: v for k, v in out.items()}, str(target))


def save_standin_flux_controlnet(pipe, target, seed: int = 0, modes: int | None = None):
    """Save a tiny FLUX.1 ControlNet for ``pipe``'s transformer as a diffusers folder; with
    ``modes``, a Union one (InstantX's layout: a condition-type embedding of that many). Its
    output projections get random weights (a trained ControlNet's start at zero and learn), so
    it changes the picture from the start."""
    import torch
    from diffusers import FluxControlNetModel

    torch.manual_seed(seed)
    config = pipe.transformer.config
    controlnet = FluxControlNetModel.from_transformer(
        pipe.transformer, num_layers=1, num_single_layers=1,
        attention_head_dim=config.attention_head_dim, num_attention_heads=config.num_attention_heads,
        load_weights_from_transformer=True)
    if modes:
        # Not from_config(controlnet.config): its "_use_default_values" would put num_mode back.
        config = {k: v for k, v in controlnet.config.items() if not k.startswith("_")}
        union = FluxControlNetModel.from_config({**config, "num_mode": modes})
        union.load_state_dict(controlnet.state_dict(), strict=False)
        controlnet = union
    with torch.no_grad():
        for name, weight in controlnet.named_parameters():
            if "controlnet" in name and weight.dim() > 1:
                weight.normal_(0.0, 0.5)
    controlnet.save_pretrained(str(target), safe_serialization=True)
    return target


def save_standin_flux_ip_adapter(pipe, folder, seed: int = 0):
    """Save a tiny FLUX.1 IP-Adapter for ``pipe`` in XLabs' layout (``ip_adapter.safetensors``:
    the image projection and each double block's key and value projections) with a tiny CLIP
    vision encoder beside it in ``image_encoder/``."""
    from pathlib import Path

    import torch
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    embed = 32
    CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        image_size=32, patch_size=8, projection_dim=embed)).save_pretrained(str(folder / "image_encoder"))
    inner, joint = pipe.transformer.inner_dim, pipe.transformer.config.joint_attention_dim
    tokens = 4  # XLabs' adapter: four image tokens
    state = {"ip_adapter_proj_model.proj.weight": torch.randn(tokens * joint, embed) * 0.5,
             "ip_adapter_proj_model.proj.bias": torch.zeros(tokens * joint),
             "ip_adapter_proj_model.norm.weight": torch.ones(joint),
             "ip_adapter_proj_model.norm.bias": torch.zeros(joint)}
    for block in range(pipe.transformer.config.num_layers):
        for kv in "kv":
            prefix = f"double_blocks.{block}.processor.ip_adapter_double_stream_{kv}_proj"
            state[f"{prefix}.weight"] = torch.randn(inner, joint) * 0.5
            state[f"{prefix}.bias"] = torch.zeros(inner)
    save_file(state, str(folder / "ip_adapter.safetensors"))
    return folder


def save_standin_flux_redux(target, seed: int = 0, width: int = 32):
    """Save a tiny FLUX.1 Redux prior as a diffusers folder laid out like
    black-forest-labs/FLUX.1-Redux-dev: a SigLIP image encoder, its processor and the
    projection to ``width`` (the FLUX.1 stand-in's T5 width), randomised so that a reference
    photo changes the picture."""
    import torch
    from diffusers import FluxPriorReduxPipeline
    from diffusers.pipelines.flux.modeling_flux import ReduxImageEncoder
    from transformers import SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(seed)
    # 64 image tokens: beside the prompt's 512 T5 tokens, enough to be seen in a tiny model.
    encoder = SiglipVisionModel(SiglipVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        image_size=64, patch_size=8))
    embedder = ReduxImageEncoder(redux_dim=32, txt_in_features=width)
    with torch.no_grad():
        for weight in embedder.parameters():
            weight.normal_(0.0, 0.5)
    FluxPriorReduxPipeline(image_encoder=encoder, image_embedder=embedder,
                           feature_extractor=SiglipImageProcessor(size={"height": 64, "width": 64})
                           ).save_pretrained(str(target), safe_serialization=True)
    return target
