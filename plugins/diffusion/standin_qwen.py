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


def build_qwen_tokenizer():
    """A Qwen2 (byte-level BPE) tokenizer: every byte, the stand-in's words whole, Qwen's special
    tokens and a chat template."""
    from transformers import Qwen2Tokenizer

    from photobatch.plugins.diffusion.standin import _WORDS, _bytes_to_unicode

    vocab = {char: i for i, char in enumerate(_bytes_to_unicode().values())}
    merges = []
    for word in _WORDS:
        # Left to right, as BPE learns them: "p h" -> "ph o" -> ... -> "photo".
        current = word[0]
        for char in word[1:]:
            if current + char not in vocab:
                merges.append((current, char))
                vocab[current + char] = len(vocab)
            current += char
    for token in _SPECIAL:
        vocab[token] = len(vocab)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, additional_special_tokens=list(_SPECIAL[1:]))
    tokenizer.chat_template = _CHAT_TEMPLATE
    return tokenizer
