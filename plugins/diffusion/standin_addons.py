"""Tiny add-ons for a stand-in model, saved the way real ones are shipped: IP-Adapter, LoRA, ControlNet.

Random weights again: they exist so the loading and switching code runs for real in tests and
benchmarks, never for pictures.
"""

from __future__ import annotations

from pathlib import Path


def save_standin_ip_adapter(pipe, target: str | Path, seed: int = 0) -> Path:
    """Save an IP-Adapter for ``pipe``'s UNet at ``target`` laid out like the hub's h94/IP-Adapter.

    ``target/models/ip-adapter_sd15.safetensors`` and ``target/models/image_encoder/``.
    """
    import torch
    from diffusers.models.attention_processor import IPAdapterAttnProcessor
    from diffusers.models.embeddings import ImageProjection
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    unet = pipe.unet
    cross = unet.config.cross_attention_dim
    weights = {}
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue  # self-attention: no adapter weights
        if name.startswith("mid_block"):
            hidden = unet.config.block_out_channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(unet.config.block_out_channels))[int(name[len("up_blocks.")])]
        else:
            hidden = unet.config.block_out_channels[int(name[len("down_blocks.")])]
        proc = IPAdapterAttnProcessor(hidden_size=hidden, cross_attention_dim=cross, scale=1.0)
        state = proc.state_dict()
        weights[f"ip_adapter.{key_id}.to_k_ip.weight"] = state["to_k_ip.0.weight"].normal_(0, 0.5)
        weights[f"ip_adapter.{key_id}.to_v_ip.weight"] = state["to_v_ip.0.weight"].normal_(0, 0.5)
        key_id += 2
    proj = ImageProjection(cross_attention_dim=cross, image_embed_dim=32, num_image_text_embeds=4)
    state = proj.state_dict()
    weights.update({
        "image_proj.proj.weight": state["image_embeds.weight"],
        "image_proj.proj.bias": state["image_embeds.bias"],
        "image_proj.norm.weight": state["norm.weight"],
        "image_proj.norm.bias": state["norm.bias"],
    })
    target = Path(target)
    models = target / "models"
    models.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in weights.items()}, str(models / "ip-adapter_sd15.safetensors"))
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, projection_dim=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=37, image_size=32, patch_size=8,
    ))
    encoder.save_pretrained(str(models / "image_encoder"))
    return target


def save_standin_lora(pipe, target: str | Path, seed: int = 0, rank: int = 4,
                      text_encoder: bool = False) -> Path:
    """Save a random LoRA for the attention layers of ``pipe``'s UNet, or of its transformer for
    SD 3.x and FLUX.1 (and, with ``text_encoder``, its text encoder's: LoRAs trained that way
    change the prompt's conditioning) as one .safetensors file."""
    import copy

    import torch
    from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model

    torch.manual_seed(seed)
    part = "transformer" if getattr(pipe, "transformer", None) is not None else "unet"
    denoiser = copy.deepcopy(getattr(pipe, part))
    # init_lora_weights=False: random B too, so the LoRA changes the output from the start.
    denoiser.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False,
                                    target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    layers = {f"{part}_lora_layers": get_peft_model_state_dict(denoiser)}
    if text_encoder:
        # peft directly: transformers' own add_adapter wants a newer peft than PyPI has.
        encoder = inject_adapter_in_model(
            LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False,
                       target_modules=["q_proj", "k_proj", "v_proj", "out_proj"]),
            copy.deepcopy(pipe.text_encoder))
        layers["text_encoder_lora_layers"] = get_peft_model_state_dict(encoder)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    type(pipe).save_lora_weights(str(target.parent), weight_name=target.name,
                                 safe_serialization=True, **layers)
    return target


def save_standin_controlnet(pipe, target: str | Path, seed: int = 0) -> Path:
    """Save a ControlNet made from ``pipe``'s UNet, with its zero convolutions randomised.

    A fresh ControlNet starts with zero output layers (it changes nothing) and a zero last
    layer in its control-image embedding (the image changes nothing); random ones make both
    effects measurable. The embedding's other layers get He-initialised weights and no bias:
    with torch's default initialisation the signal shrinks through its eight layers and the
    biases alone decide what comes out, so that every control image gave nearly one picture.
    """
    import torch
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    net = ControlNetModel.from_unet(pipe.unet, conditioning_embedding_out_channels=(16, 32, 48, 64))
    _randomise_outputs(net)
    net.save_pretrained(str(target), safe_serialization=True)
    return Path(target)


def save_standin_union_controlnet(pipe, target: str | Path, seed: int = 0, modes: int = 8) -> Path:
    """Save a Union ControlNet (xinsir's SDXL ControlNet++ layout, ``modes`` condition types:
    8 like its promax weights, 6 like its first ones) made from the SDXL ``pipe``'s UNet, its
    zero layers randomised as in ``save_standin_controlnet`` and its condition-type projection
    too, so that the mode changes the picture."""
    import torch
    from diffusers import ControlNetUnionModel

    torch.manual_seed(seed)
    unet = pipe.unet
    shape = ControlNetUnionModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32, 48, 64),
                                           load_weights_from_unet=False).config
    width = unet.config.block_out_channels[0]
    # from_unet sizes the condition-type transformer for SDXL's 320 channels; a tiny UNet has
    # fewer. (Without the "_" keys: "_use_default_values" would put the sizes back.)
    config = {k: v for k, v in shape.items() if not k.startswith("_")}
    config.update(num_control_type=modes, num_trans_channel=width, num_proj_channel=width,
                  num_trans_head=2)
    net = ControlNetUnionModel.from_config(config)
    for part in ("conv_in", "time_embedding", "down_blocks", "mid_block"):
        getattr(net, part).load_state_dict(getattr(unet, part).state_dict(), strict=False)
    _randomise_outputs(net)
    with torch.no_grad():
        net.spatial_ch_projs.weight.normal_(0, 0.3)
    net.save_pretrained(str(target), safe_serialization=True)
    return Path(target)


def _randomise_outputs(net) -> None:
    import torch

    with torch.no_grad():
        for module in list(net.controlnet_down_blocks) + [net.controlnet_mid_block]:
            module.weight.normal_(0, 0.3)
        embedding = net.controlnet_cond_embedding
        for layer in embedding.modules():
            if isinstance(layer, torch.nn.Conv2d) and layer is not embedding.conv_out:
                torch.nn.init.kaiming_normal_(layer.weight)
                layer.bias.zero_()
        embedding.conv_out.weight.normal_(0, 0.3)


def save_standin_depth_estimator(target: str | Path, seed: int = 0) -> Path:
    """Save a tiny randomly initialised DPT depth estimator with its image processor (a folder
    laid out like a hub depth model: config.json, preprocessor_config.json, weights)."""
    import torch
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    torch.manual_seed(seed)
    config = DPTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                       intermediate_size=37, image_size=64, patch_size=16,
                       backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[16, 16, 16, 16],
                       fusion_hidden_size=16, reassemble_factors=[4, 2, 1, 0.5])
    DPTForDepthEstimation(config).eval().save_pretrained(str(target))
    DPTImageProcessor(size={"height": 64, "width": 64}, keep_aspect_ratio=False).save_pretrained(str(target))
    return Path(target)


def save_standin_captioner(target: str | Path, seed: int = 0) -> Path:
    """Save a tiny randomly initialised BLIP captioner with its processor and a 16-word
    vocabulary; its language head favours plain words, so it always says something."""
    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
    words = ["a", "photo", "of", "street", "tree", "snow", "house", "with", "the", "car", "sky",
             "river", "bridge", "woman", "dog", "sunset"]
    (target / "vocab.txt").write_text("\n".join(specials + words) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(str(target / "vocab.txt"), bos_token="[DEC]")
    torch.manual_seed(seed)
    config = BlipConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, encoder_hidden_size=32,
                         intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                         max_position_embeddings=64, bos_token_id=tokenizer.bos_token_id,
                         sep_token_id=tokenizer.sep_token_id, pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4,
                           num_hidden_layers=2, image_size=32, patch_size=8),
        projection_dim=32)
    model = BlipForConditionalGeneration(config).eval()
    with torch.no_grad():
        bias = model.text_decoder.cls.predictions.bias
        bias[:len(specials)] -= 20.0  # never a special token, so the caption is never empty
        bias[len(specials):] += torch.randn(len(words)) * 0.01
    model.save_pretrained(str(target))
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
                  tokenizer=tokenizer).save_pretrained(str(target))
    return target
