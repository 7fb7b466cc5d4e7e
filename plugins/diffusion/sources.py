"""Model references: a diffusers folder, a single-file checkpoint, or a hub id; what is refused.

Resolving is cheap (no torch): the session resolves a recipe's model before any GPU work, so a
typo or a pickle checkpoint fails the run with a clear reason at once.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
SINGLE_FILE_SUFFIXES = (".safetensors",)
ALLOW_PICKLE_ENV = "PHOTOBATCH_ALLOW_PICKLE"
MODEL_CONFIG_ENV = "PHOTOBATCH_MODEL_CONFIG"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelError(Exception):
    """A model reference that cannot be loaded, with a reason a user can act on."""


@dataclass(frozen=True)
class ModelRef:
    """A resolved model reference: what kind it is and the identity the catalog records."""

    kind: str  # "folder" | "single-file" | "hub"
    location: str
    model_id: str
    config: str | None = None  # single file: a diffusers folder (or hub id) with the configs


def offline() -> bool:
    """True when Hugging Face offline mode is on (HF_HUB_OFFLINE)."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def pickle_allowed() -> bool:
    """True when the user opted in to pickle checkpoints (PHOTOBATCH_ALLOW_PICKLE=1)."""
    return os.environ.get(ALLOW_PICKLE_ENV, "").lower() in ("1", "true", "yes", "on")


def resolve_model(ref: str, config: str | None = None, allow_pickle: bool | None = None) -> ModelRef:
    """Classify ``ref`` as a diffusers folder, a single-file checkpoint or a hub id.

    ``config`` (else PHOTOBATCH_MODEL_CONFIG) names the diffusers folder whose configs a single
    file is loaded with. Pickle checkpoints are refused unless ``allow_pickle`` (else
    PHOTOBATCH_ALLOW_PICKLE=1) says the user trusts them.
    """
    path = Path(ref).expanduser()
    if path.exists():
        if path.is_dir():
            if not (path / "model_index.json").is_file():
                raise ModelError(
                    f"model folder {path} has no model_index.json: it is not a diffusers pipeline folder"
                )
            resolved = str(path.resolve())
            return ModelRef("folder", resolved, resolved)
        suffix = path.suffix.lower()
        allow = pickle_allowed() if allow_pickle is None else allow_pickle
        if suffix in PICKLE_SUFFIXES and not allow:
            raise ModelError(
                f"model {path.name}: pickle checkpoints ({', '.join(PICKLE_SUFFIXES)}) can run code "
                f"when loaded; convert it to .safetensors, or set {ALLOW_PICKLE_ENV}=1 if you trust "
                "where it came from"
            )
        if suffix in SINGLE_FILE_SUFFIXES or suffix in PICKLE_SUFFIXES:
            resolved = str(path.resolve())
            return ModelRef("single-file", resolved, resolved, _config_for(config))
        raise ModelError(f"model {path}: not a diffusers folder or a known checkpoint format")
    if _HUB_ID.match(ref) and not ref.startswith(("/", ".", "~")):
        return ModelRef("hub", ref, ref)
    raise ModelError(f"model {ref!r} does not exist (expected a diffusers folder, a .safetensors "
                     "file or a hub id like org/name)")


def _config_for(config: str | None) -> str | None:
    config = config or os.environ.get(MODEL_CONFIG_ENV) or None
    if config is None:
        return None
    path = Path(config).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ModelError(f"model_config {path} has no model_index.json: it is not a diffusers folder")
        return str(path.resolve())
    if _HUB_ID.match(config):
        return config
    raise ModelError(f"model_config {config!r} does not exist (expected a diffusers folder or a hub id)")


def model_hash(ref: ModelRef) -> str | None:
    """A cheap identity of local weights (the catalog's model hash); None for hub ids.

    Hashing gigabytes on every start would cost minutes. For a folder: every config's bytes and
    every file's size. For a single file: its size, its safetensors header (tensor names, shapes
    and offsets) and a few sampled megabytes of the weights.
    """
    digest = hashlib.sha256()
    if ref.kind == "folder":
        root = Path(ref.location)
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(root).as_posix()
            digest.update(rel.encode())
            if path.suffix == ".json":
                digest.update(path.read_bytes())
            else:
                digest.update(str(path.stat().st_size).encode())
        return digest.hexdigest()[:16]
    if ref.kind == "single-file":
        path = Path(ref.location)
        size = path.stat().st_size
        digest.update(str(size).encode())
        chunk = 1 << 20
        with open(path, "rb") as fh:
            for offset in (0, size // 3, (2 * size) // 3, max(0, size - chunk)):
                fh.seek(offset)
                digest.update(fh.read(chunk))
        if ref.config:
            digest.update(ref.config.encode())
        return digest.hexdigest()[:16]
    return None
