"""Resolve a model reference (local diffusers folder or hub id) and load an img2img pipeline."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
# A real CLIP BPE vocabulary has ~49k tokens; every byte-level BPE has at least 256 + specials.
MIN_TOKENIZER_VOCAB = 300
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelError(Exception):
    """A model reference that cannot be loaded, with a reason a user can act on."""


@dataclass(frozen=True)
class ModelRef:
    """A resolved model reference: what kind it is and the identity the catalog records."""

    kind: str  # "folder" | "hub"
    location: str
    model_id: str


def resolve_model(ref: str) -> ModelRef:
    """Classify ``ref`` as a local diffusers folder or a hub id; refuse what we cannot load."""
    path = Path(ref).expanduser()
    if path.exists():
        if path.is_dir():
            if not (path / "model_index.json").is_file():
                raise ModelError(
                    f"model folder {path} has no model_index.json: it is not a diffusers pipeline folder"
                )
            resolved = str(path.resolve())
            return ModelRef("folder", resolved, resolved)
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise ModelError(
                f"model {path.name}: pickle checkpoints ({', '.join(PICKLE_SUFFIXES)}) can run code "
                "when loaded; convert it to .safetensors"
            )
        if path.suffix.lower() == ".safetensors":
            raise ModelError(
                f"model {path.name}: single-file checkpoints are not supported yet; "
                "use a diffusers folder or a hub id"
            )
        raise ModelError(f"model {path}: not a diffusers folder or a known checkpoint format")
    if _HUB_ID.match(ref) and not ref.startswith(("/", ".", "~")):
        return ModelRef("hub", ref, ref)
    raise ModelError(f"model {ref!r} does not exist (expected a diffusers folder or a hub id like org/name)")


def model_hash(ref: ModelRef) -> str | None:
    """A cheap identity of a local folder's weights: every config's bytes and every file's size.

    Hashing gigabytes of weights on every start would cost minutes; configs plus sizes change
    whenever the weights are replaced by a different model or precision.
    """
    if ref.kind != "folder":
        return None
    digest = hashlib.sha256()
    root = Path(ref.location)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        digest.update(rel.encode())
        if path.suffix == ".json":
            digest.update(path.read_bytes())
        else:
            digest.update(str(path.stat().st_size).encode())
    return digest.hexdigest()[:16]


def native_size(pipe) -> int:
    """The family's native working side in pixels (SD 1.x 512, SD 2.x 768, SDXL 1024)."""
    sample = getattr(pipe.unet.config, "sample_size", 64)
    if isinstance(sample, (list, tuple)):
        sample = sample[0]
    return int(sample) * int(getattr(pipe, "vae_scale_factor", 8))


def check_tokenizer(pipe, model_id: str) -> None:
    """Refuse a tokenizer with a toy vocabulary (transformers' silent offline fallback)."""
    for attr in ("tokenizer", "tokenizer_2"):
        tok = getattr(pipe, attr, None)
        if tok is not None and len(tok) < MIN_TOKENIZER_VOCAB:
            raise ModelError(
                f"model {model_id}: its {attr} has only {len(tok)} tokens, so it was not really "
                "loaded (an offline download that silently failed?); re-download the model"
            )


def load_img2img_pipeline(ref: ModelRef, device: str, dtype):
    """Load an img2img pipeline for ``ref`` onto ``device`` with ``dtype``."""
    import diffusers
    import transformers
    from diffusers import AutoPipelineForImage2Image

    # Loading bars are noise in a batch tool's output and in the daemon's log.
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    kwargs = {"dtype": dtype}
    if ref.kind == "hub":
        kwargs["local_files_only"] = _offline()
    try:
        pipe = AutoPipelineForImage2Image.from_pretrained(ref.location, **kwargs)
    except (OSError, ValueError) as exc:
        if ref.kind == "hub" and _offline():
            raise ModelError(
                f"model {ref.location} is not in the Hugging Face cache and offline mode is on "
                "(HF_HUB_OFFLINE=1): download it once with network access, or pass a local folder"
            ) from None
        raise ModelError(f"model {ref.model_id} could not be loaded: {_first_line(exc)}") from exc
    check_tokenizer(pipe, ref.model_id)
    # Safety checkers judge generated content; ours are the photographer's own photos.
    if hasattr(pipe, "safety_checker"):
        pipe.safety_checker = None
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

