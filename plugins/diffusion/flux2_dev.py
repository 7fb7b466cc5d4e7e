"""FLUX.2 [dev]: the tokenizer its Mistral text encoder reads prompts through, and a pipeline of
it that takes a strength.

diffusers' ``Flux2Pipeline`` (FLUX.2 [dev]: a 32B FLUX.2 transformer with distilled guidance,
conditioned on Mistral Small 3.1's hidden states) makes pictures from text and reference images
but takes no strength, so it cannot run img2img. diffusers' FLUX.2 [klein] inpainting pipeline
does, with the same transformer class, VAE, sampler schedule and reference-image handling: run
with everything masked it is img2img that also reads the photo itself. ``dev_inpaint_pipeline_class``
is that pipeline reading the prompt and the guidance as ``Flux2Pipeline`` does: Mistral's chat
template with BFL's system message, hidden states 10, 20 and 30, and the guidance scale given to
the transformer's guidance embedding (no classifier-free guidance, so no negative prompt).

The model's ``tokenizer`` folder is saved as transformers' ``PixtralProcessor``, which in
transformers 5 cannot be made without torchvision (not a photobatch dependency). The pipeline
only ever tokenizes text with it, so ``load_tokenizer`` loads that folder's tokenizer alone.
"""

from __future__ import annotations

import functools
import inspect
import json
from pathlib import Path


def load_tokenizer(folder: str):
    """The tokenizer of the FLUX.2 [dev] model in ``folder`` (its diffusers folder, or a hub id's
    cached copy), from its ``tokenizer`` folder, with the processor's chat template where the
    tokenizer's own files have none."""
    from transformers import AutoTokenizer

    where = Path(folder) / "tokenizer"
    tokenizer = AutoTokenizer.from_pretrained(str(where))
    if not tokenizer.chat_template:
        # A processor keeps its template in chat_template.json ({"chat_template": "..."}).
        saved = where / "chat_template.json"
        if saved.is_file():
            tokenizer.chat_template = json.loads(saved.read_text(encoding="utf-8"))["chat_template"]
    if not tokenizer.chat_template:
        raise ValueError(f"the tokenizer in {where} has no chat template, which FLUX.2 [dev] "
                         "prompts are written in")
    return tokenizer


@functools.cache
def dev_inpaint_pipeline_class():
    """The FLUX.2 [klein] inpainting pipeline reading the prompt and the guidance as FLUX.2
    [dev]'s own pipeline (``Flux2Pipeline``) does: the strength-taking pipeline of a [dev]
    model."""
    import torch
    from diffusers import Flux2KleinInpaintPipeline, Flux2Pipeline
    from diffusers.pipelines.flux2.system_messages import SYSTEM_MESSAGE

    class Flux2DevInpaintPipeline(Flux2KleinInpaintPipeline):
        """Flux2KleinInpaintPipeline conditioned as Flux2Pipeline is."""

        _get_mistral_3_small_prompt_embeds = staticmethod(Flux2Pipeline._get_mistral_3_small_prompt_embeds)

        def __init__(self, scheduler, vae, text_encoder, tokenizer, transformer, is_distilled=False):
            # (The parts by name: from_pipe reads them off this signature. is_distilled is
            # klein's setting, which its parent registers; [dev] runs no CFG whatever it says.)
            super().__init__(scheduler=scheduler, vae=vae, text_encoder=text_encoder,
                             tokenizer=tokenizer, transformer=transformer, is_distilled=is_distilled)
            self.system_message = SYSTEM_MESSAGE
            self.tokenizer_max_length = 512

        @property
        def do_classifier_free_guidance(self):
            # Guidance-distilled: the scale goes to the transformer, not into a second pass.
            return False

        def encode_prompt(self, prompt, device=None, num_images_per_prompt=1, prompt_embeds=None,
                          max_sequence_length=512, text_encoder_out_layers=None):
            # Mistral's hidden states 10, 20 and 30 ([dev]'s), not klein's Qwen3 ones.
            return Flux2Pipeline.encode_prompt(self, prompt, device=device,
                                               num_images_per_prompt=num_images_per_prompt,
                                               prompt_embeds=prompt_embeds,
                                               max_sequence_length=max_sequence_length)

        def __call__(self, *args, **kwargs):
            hook = self.transformer.register_forward_pre_hook(self._with_guidance, with_kwargs=True)
            try:
                return super().__call__(*args, **kwargs)
            finally:
                hook.remove()

        def _with_guidance(self, module, args, kwargs):
            # What Flux2Pipeline hands the transformer: the scale, one a picture, in float32.
            hidden = kwargs["hidden_states"]
            kwargs["guidance"] = torch.full([hidden.shape[0]], float(self._guidance_scale),
                                            device=hidden.device, dtype=torch.float32)
            return args, kwargs

    # Callers read what a pipeline takes off its __call__: the parent's arguments.
    Flux2DevInpaintPipeline.__call__.__signature__ = inspect.signature(Flux2KleinInpaintPipeline.__call__)
    # from_pipe hands a model over only to a parameter annotated with its class: [dev]'s.
    Flux2DevInpaintPipeline.__init__.__annotations__ = dict(Flux2Pipeline.__init__.__annotations__)
    return Flux2DevInpaintPipeline
