"""A tiny, randomly initialised FLUX.2 [klein] pipeline: a FLUX.2 transformer reading three
hidden states of a Qwen3 causal LM (its tokenizer from ``standin_qwen``), and FLUX.2's VAE with
its latent batch norm; and a FLUX.2 [dev] one, whose transformer has a guidance embedding and
reads a Mistral 3 model's hidden states.

Laid out as black-forest-labs/FLUX.2-klein-4B's folder is (``Flux2KleinPipeline``, ``is_distilled``
in model_index.json) and FLUX.2-dev's (``Flux2Pipeline``, its tokenizer saved as Pixtral's
processor), so the real loading code reads them; their pictures are colour noise.
"""

from __future__ import annotations


def build_standin_flux2_pipeline(seed: int = 0, distilled: bool = True):
    """Build a tiny FLUX.2 [klein] text-to-image pipeline in memory: ``distilled`` as the klein
    models BFL ships for 4 steps (no classifier-free guidance), else as a base model."""
    import torch
    from diffusers import Flux2KleinPipeline
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from photobatch.plugins.diffusion.standin_qwen import build_qwen_tokenizer

    torch.manual_seed(seed)
    tokenizer = build_qwen_tokenizer()
    # 28 layers: the pipeline reads hidden states 9, 18 and 27 and joins them (3 x 16 wide).
    encoder = Qwen3ForCausalLM(Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=24, num_hidden_layers=28,
        num_attention_heads=2, num_key_value_heads=1, head_dim=8, max_position_embeddings=1024))
    return Flux2KleinPipeline(**_flux2_parts(guidance=False), text_encoder=encoder, tokenizer=tokenizer,
                              is_distilled=distilled)


def _flux2_parts(guidance: bool) -> dict:
    """The parts klein and [dev] share, tiny: FLUX.2's VAE with its latent batch norm, a FLUX.2
    transformer reading 48-wide text states (with a guidance embedding: [dev]'s) and the
    scheduler."""
    import torch
    from diffusers import AutoencoderKLFlux2, FlowMatchEulerDiscreteScheduler, Flux2Transformer2DModel

    # 8 latent channels, patchified 2x2: 32 a token (the real VAE's 32 make 128).
    vae = AutoencoderKLFlux2(block_out_channels=(8, 16, 32, 32), layers_per_block=1,
                             latent_channels=8, norm_num_groups=8, sample_size=1024)
    with torch.no_grad():
        # A trained VAE's latent statistics, not the identity: the pipeline normalises by them.
        vae.bn.running_mean.normal_(0.0, 0.1)
        vae.bn.running_var.uniform_(0.5, 1.5)
    transformer = Flux2Transformer2DModel(
        patch_size=1, in_channels=32, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=48, timestep_guidance_channels=32,
        axes_dims_rope=(4, 4, 4, 4), guidance_embeds=guidance)
    return {"vae": vae, "transformer": transformer,
            "scheduler": FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True)}


# Mistral Small 3.1's special tokens and chat template, as FLUX.2 [dev]'s prompts are written in
# them: the system message and the prompt, each a list of text parts.
_MISTRAL_SPECIAL = ("<unk>", "<s>", "</s>", "<pad>", "[INST]", "[/INST]", "[SYSTEM_PROMPT]",
                    "[/SYSTEM_PROMPT]", "[IMG]", "[IMG_BREAK]", "[IMG_END]")
_MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% set text = message['content'] if message['content'] "
    "is string else message['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') "
    "| join('') %}{% if message['role'] == 'system' %}[SYSTEM_PROMPT]{{ text }}[/SYSTEM_PROMPT]"
    "{% elif message['role'] == 'user' %}[INST]{{ text }}[/INST]{% else %}{{ text }}{{ eos_token }}"
    "{% endif %}{% endfor %}")
# Words of BFL's system message, whole tokens here as in Mistral's vocabulary.
_SYSTEM_WORDS = ("You are an AI that reasons about image descriptions. You give structured responses "
                 "focusing on object relationships, object attribution and actions without speculation.").split()


def build_mistral_tokenizer():
    """A byte-level BPE tokenizer with Mistral Small 3.1's special tokens and a chat template
    written as its own is: the stand-in's words and BFL's system message whole."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from photobatch.plugins.diffusion.standin import _WORDS

    words = [*_WORDS, *_SYSTEM_WORDS]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator([" ".join(words)] + words, trainers.BpeTrainer(
        vocab_size=2000, special_tokens=list(_MISTRAL_SPECIAL), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>",
                                        unk_token="<unk>", pad_token="<pad>",
                                        additional_special_tokens=list(_MISTRAL_SPECIAL[4:]))
    tokenizer.chat_template = _MISTRAL_TEMPLATE
    return tokenizer


def build_standin_flux2_dev_pipeline(seed: int = 0):
    """Build a tiny FLUX.2 [dev] text-to-image pipeline in memory: a FLUX.2 transformer with a
    guidance embedding reading three hidden states (10, 20, 30) of a Mistral 3 model (a Pixtral
    vision tower beside its language model), FLUX.2's VAE."""
    import torch
    from diffusers import Flux2Pipeline
    from transformers import (Mistral3Config, Mistral3ForConditionalGeneration, MistralConfig,
                              PixtralVisionConfig)

    torch.manual_seed(seed)
    tokenizer = build_mistral_tokenizer()
    # 31 layers: the pipeline reads hidden states 10, 20 and 30 and joins them (3 x 16 wide).
    text = MistralConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=24,
                         num_hidden_layers=31, num_attention_heads=2, num_key_value_heads=1,
                         head_dim=8, max_position_embeddings=1024)
    vision = PixtralVisionConfig(hidden_size=16, intermediate_size=24, num_hidden_layers=1,
                                 num_attention_heads=2, head_dim=8, patch_size=8, image_size=64)
    encoder = Mistral3ForConditionalGeneration(Mistral3Config(
        vision_config=vision, text_config=text, spatial_merge_size=1, vision_feature_layer=-1,
        image_token_index=tokenizer.convert_tokens_to_ids("[IMG]")))
    return Flux2Pipeline(**_flux2_parts(guidance=True), text_encoder=encoder, tokenizer=tokenizer)


def name_tokenizer_as_bfls(folder) -> None:
    """Lay the saved tokenizer out as a processor's (BFL's FLUX.2 [dev] folder saves Pixtral's):
    model_index.json naming transformers' PixtralProcessor, the image processor's and the
    processor's settings beside the tokenizer, the chat template in the processor's file."""
    import json
    from pathlib import Path

    folder = Path(folder)
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    index["tokenizer"] = ["transformers", "PixtralProcessor"]
    (folder / "model_index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
    where = folder / "tokenizer"
    template = where / "chat_template.jinja"
    (where / "chat_template.json").write_text(json.dumps({"chat_template": template.read_text(encoding="utf-8")}),
                                              encoding="utf-8")
    template.unlink()
    (where / "processor_config.json").write_text(json.dumps({
        "image_break_token": "[IMG_BREAK]", "image_end_token": "[IMG_END]", "image_token": "[IMG]",
        "patch_size": 8, "processor_class": "PixtralProcessor", "spatial_merge_size": 1}, indent=2))
    (where / "preprocessor_config.json").write_text(json.dumps({
        "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
        "image_processor_type": "PixtralImageProcessor", "patch_size": {"height": 8, "width": 8},
        "processor_class": "PixtralProcessor", "resample": 3, "rescale_factor": 0.00392156862745098,
        "size": {"longest_edge": 64}}, indent=2))


# diffusers' names -> BFL's (the reverse of diffusers' single-file converter).
_TOP = {"x_embedder": "img_in", "context_embedder": "txt_in",
        "time_guidance_embed.timestep_embedder.linear_1": "time_in.in_layer",
        "time_guidance_embed.timestep_embedder.linear_2": "time_in.out_layer",
        "time_guidance_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
        "time_guidance_embed.guidance_embedder.linear_2": "guidance_in.out_layer",
        "double_stream_modulation_img.linear": "double_stream_modulation_img.lin",
        "double_stream_modulation_txt.linear": "double_stream_modulation_txt.lin",
        "single_stream_modulation.linear": "single_stream_modulation.lin",
        "proj_out": "final_layer.linear"}
_DOUBLE = {"attn.norm_q.weight": "img_attn.norm.query_norm.scale",
           "attn.norm_k.weight": "img_attn.norm.key_norm.scale",
           "attn.to_out.0.weight": "img_attn.proj.weight", "ff.linear_in.weight": "img_mlp.0.weight",
           "ff.linear_out.weight": "img_mlp.2.weight",
           "attn.norm_added_q.weight": "txt_attn.norm.query_norm.scale",
           "attn.norm_added_k.weight": "txt_attn.norm.key_norm.scale",
           "attn.to_add_out.weight": "txt_attn.proj.weight",
           "ff_context.linear_in.weight": "txt_mlp.0.weight",
           "ff_context.linear_out.weight": "txt_mlp.2.weight"}
_SINGLE = {"attn.to_qkv_mlp_proj.weight": "linear1.weight", "attn.to_out.weight": "linear2.weight",
           "attn.norm_q.weight": "norm.query_norm.scale", "attn.norm_k.weight": "norm.key_norm.scale"}


def save_flux2_single_file(transformer, target, prefix: str = "") -> None:
    """Save a FLUX.2 ``transformer`` (diffusers layout) as a single file in BFL's original layout
    (fused q/k/v; ``prefix`` "model.diffusion_model." gives ComfyUI's naming), as BFL ships
    flux-2-klein-4b.safetensors and fine-tunes are shared. diffusers' single-file loader reads
    it back into the same weights."""
    import torch
    from safetensors.torch import save_file

    state = {k: v.detach().clone().contiguous() for k, v in transformer.state_dict().items()}
    out = {}
    for key, value in state.items():
        if key.startswith("transformer_blocks."):
            _, index, rest = key.split(".", 2)
            block = f"double_blocks.{index}"
            if rest in ("attn.to_q.weight", "attn.add_q_proj.weight"):
                stream = "img" if rest.startswith("attn.to_q") else "txt"
                names = (("to_q", "to_k", "to_v") if stream == "img"
                         else ("add_q_proj", "add_k_proj", "add_v_proj"))
                out[f"{block}.{stream}_attn.qkv.weight"] = torch.cat(
                    [state[f"transformer_blocks.{index}.attn.{name}.weight"] for name in names])
            elif rest in _DOUBLE:
                out[f"{block}.{_DOUBLE[rest]}"] = value
        elif key.startswith("single_transformer_blocks."):
            _, index, rest = key.split(".", 2)
            out[f"single_blocks.{index}.{_SINGLE[rest]}"] = value
        elif key == "norm_out.linear.weight":
            # (shift, scale) in BFL's layout, (scale, shift) in diffusers'.
            scale, shift = value.chunk(2, dim=0)
            out["final_layer.adaLN_modulation.1.weight"] = torch.cat([shift, scale])
        else:
            name, param = key.rsplit(".", 1)
            out[f"{_TOP[name]}.{param}"] = value
    save_file({prefix + k: v for k, v in out.items()}, str(target))
