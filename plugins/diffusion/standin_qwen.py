"""A Qwen2 tokenizer built in code, for the stand-ins of the models that read Qwen3's hidden
states (Z-Image, FLUX.2 [klein]): byte-level BPE, the stand-in's words whole, Qwen's special
tokens and its chat template (these pipelines wrap each prompt in a chat turn)."""

from __future__ import annotations

# Qwen3's chat template as Z-Image and FLUX.2 [klein] use it: the prompt as the user's turn,
# the assistant's turn opened (with thinking off, an empty think block first, as Qwen3's own
# template writes).
_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n"
    "{% endif %}{% endif %}")
_SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>")


# Words of the prompt templates the pipelines wrap prompts in (Qwen-Image's system prompt): whole
# tokens here as in Qwen's vocabulary, so that a template's prefix is as many tokens as the
# pipeline drops (34 for Qwen-Image's).
_TEMPLATE_WORDS = ("system user assistant Describe image by detailing color shape size texture "
                   "quantity spatial relationships objects background").split()


def build_qwen_tokenizer():
    """A Qwen2 (byte-level BPE) tokenizer: every byte, the stand-in's and the templates' words
    whole (with their leading space, "Ġphoto", as Qwen's vocabulary has them), Qwen's special
    tokens and a chat template. Its merges are learnt from those words by the tokenizers
    library's BPE trainer, so each word comes out whole whatever merges other words share."""
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    from photobatch.plugins.diffusion.standin import _WORDS

    words = [*_WORDS, *_TEMPLATE_WORDS]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator([" ".join(words)] + words, trainers.BpeTrainer(
        vocab_size=5000, min_frequency=1, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    learnt = json.loads(bpe.to_str())["model"]
    vocab = dict(learnt["vocab"])
    merges = [tuple(pair) if isinstance(pair, list) else tuple(pair.split(" ")) for pair in learnt["merges"]]
    for token in _SPECIAL:
        vocab[token] = len(vocab)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, additional_special_tokens=list(_SPECIAL[1:]))
    tokenizer.chat_template = _CHAT_TEMPLATE
    return tokenizer
