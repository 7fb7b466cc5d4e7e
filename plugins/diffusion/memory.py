"""GPU memory: pick savings from free VRAM, tile the VAE for large inputs, retry after OOM.

Levels, each adding to the one before: 0 nothing; 1 a tiled VAE that decodes a batch one image
at a time; 2 model CPU offload; 3 sequential CPU offload. The CPU always stays at 0:
offloading to the CPU from the CPU means nothing (DESIGN §5).

Attention is not sliced on CUDA: the pipelines' attention is PyTorch's SDPA, which never holds
the full attention matrix; slicing replaces it with a loop that does, in pieces (diffusers'
enable_attention_slicing warns that it slows SDPA down). Measured on the CPU, the stand-in's
UNet at a 1280x1280 photo's latents: 129 MB and 1.9 s with SDPA, 740 MB and 6.9 s sliced.
Apple's MPS gets it, as diffusers advises for Macs.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

MAX_LEVEL = 3
# Rough VRAM (GiB) a family needs at level 0 with 16-bit weights and a 1 MP image: SD 3.x counts
# SD 3.5 Large (an 8B transformer and T5-XXL), FLUX.1 its 12B transformer and T5-XXL, Z-Image
# its 6B transformer and Qwen3-4B, FLUX.2 [klein] 4B its transformer and Qwen3-4B, Qwen-Image
# its 20B transformer and Qwen2.5-VL-7B, FLUX.2 [dev] its 32B transformer and Mistral Small 3.1
# (24B). By the names of the models' recipe tables ("flux2_dev"), else their families'.
_NEED_GIB = {"sd1": 4.0, "sd2": 5.0, "sdxl": 10.0, "sd3": 28.0, "flux": 35.0, "zimage": 22.0,
             "flux2": 20.0, "qwenimage": 60.0, "flux2_dev": 112.0}
# The VAE decodes in tiles above this many pixels (its peak memory grows with the image).
VAE_TILING_PIXELS = 1536 * 1536


def free_vram_gib(device: str) -> float | None:
    """Free memory on a CUDA device in GiB, or None where it cannot be known."""
    if not device.startswith("cuda"):
        return None
    import torch

    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return free / 2**30


def level_for(free_gib: float | None, family: str) -> int:
    """The memory level for ``free_gib`` of free VRAM and a model ``family``."""
    if free_gib is None:
        return 0
    need = _NEED_GIB.get(family, 10.0)
    if free_gib >= need:
        return 0
    if free_gib >= need * 0.75:
        return 1
    if free_gib >= need * 0.4:
        return 2
    return 3


def initial_level(device: str, info, free_gib: float | None = None) -> int:
    """The level to start a model at on ``device`` (always 0 off CUDA) from ``free_gib``, the
    free memory measured before its weights were loaded (the needs above include them); None
    measures it now."""
    if not device.startswith("cuda"):
        return 0
    name = info.table if info.table in _NEED_GIB else info.family.name
    return level_for(free_vram_gib(device) if free_gib is None else free_gib, name)


def apply_level(pipe, level: int, device: str) -> None:
    """Switch ``pipe`` to the memory savings of ``level`` (never on the CPU)."""
    if device == "cpu" or level <= 0:
        return
    # At once, not only from the next call (set_vae_tiling): the file being retried needs it.
    # At a large size the VAE's decode at full working size is the peak.
    vae = getattr(pipe, "vae", None)
    for saving in ("enable_tiling", "enable_slicing"):
        if vae is not None and hasattr(vae, saving):
            getattr(vae, saving)()
    if device.startswith("mps"):
        pipe.enable_attention_slicing()
    if level == 2:
        pipe.enable_model_cpu_offload(device=device)
    elif level >= 3:
        pipe.enable_sequential_cpu_offload(device=device)


def set_vae_tiling(pipe, width: int, height: int, level: int = 0) -> bool:
    """Tile the VAE for large inputs (or under memory pressure); return whether it is on."""
    vae = getattr(pipe, "vae", None)
    if vae is None or not hasattr(vae, "enable_tiling"):
        return False
    on = width * height > VAE_TILING_PIXELS or level >= 1
    if on:
        vae.enable_tiling()
    else:
        vae.disable_tiling()
    return on


# Out of memory where it is not torch's allocator that runs out (cuBLAS or cuDNN creating
# their workspaces, a kernel's own cudaMalloc): a RuntimeError that says so.
_OOM_WORDS = ("out of memory", "cublas_status_alloc_failed", "cudnn_status_alloc_failed")


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a CUDA (or other accelerator) out-of-memory error."""
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    if isinstance(exc, oom):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(word in text for word in _OOM_WORDS)


def call_with_oom_retry(call, loaded, pipes):
    """Run ``call()``; on out-of-memory move ``loaded`` one memory level down and try again.

    ``pipes`` are the pipelines to switch (the task pipeline shares the base's components).
    The new level sticks for the model: the next files start where this one succeeded.
    """
    while True:
        try:
            return call()
        except Exception as exc:
            if not is_out_of_memory(exc) or loaded.memory_level >= MAX_LEVEL or loaded.device == "cpu":
                raise
        # Out of the except clause: the failed attempt's traceback is gone, and with it the
        # tensors its frames held, so emptying the cache now hands their memory back.
        _empty_cache()
        loaded.memory_level += 1
        log.warning("out of GPU memory on %s; retrying at memory level %d",
                    loaded.ref.model_id, loaded.memory_level)
        for pipe in pipes:
            apply_level(pipe, loaded.memory_level, loaded.device)


def run_in_batches(items: list, size: int, loaded, run) -> list:
    """``run(chunk)`` (a list of results per chunk) over ``items`` in chunks of up to ``size``.

    A chunk that runs out of GPU memory is split in two, each half run at the same memory
    level, and the smaller size is kept for the model (``loaded.batch_limit``): four photos a
    call at a lower batch beat every later photo offloaded to the CPU. Only a single item
    lowers the memory level (``call_with_oom_retry``, inside ``run``).
    """
    limit = max(1, min(size, loaded.batch_limit or size))
    pending = [items[i:i + limit] for i in range(0, len(items), limit)]
    results: list = []
    while pending:
        chunk = pending.pop(0)
        try:
            results.extend(run(chunk))
            continue
        except Exception as exc:
            if len(chunk) == 1 or not is_out_of_memory(exc) or loaded.device == "cpu":
                raise
        _empty_cache()  # out of the except clause, as in call_with_oom_retry
        half = len(chunk) // 2
        loaded.batch_limit = half
        log.warning("out of GPU memory on %s with %d images a call; trying %d",
                    loaded.ref.model_id, len(chunk), half)
        pending[:0] = [chunk[:half], chunk[half:]]
    return results


def _empty_cache() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
