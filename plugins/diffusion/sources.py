"""Model references: a diffusers folder, a single-file checkpoint, or a hub id; what is refused.

Resolving is cheap (no torch): the session resolves a recipe's model before any GPU work, so a
typo or a pickle checkpoint fails the run with a clear reason at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from photobatch.recipes.runner_fields import DEFAULT_CAPTIONER, wants_caption

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
SINGLE_FILE_SUFFIXES = (".safetensors", ".gguf")
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


# One request, no retries: a machine without network learns it in seconds, instead of in
# huggingface_hub's backoff (five retries, ~23 s) for every file of a shoot.
HUB_PROBE_SECONDS = 5.0


def hub_unreachable() -> str | None:
    """Why the Hugging Face hub gives no answer now (None when it answers, whatever the answer)."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=HUB_PROBE_SECONDS)
    except Exception as exc:  # DNS, refused, timeout, proxy: all mean no answer, and say why
        return first_line(exc)
    return None


def cache_only_reason() -> str | None:
    """Why hub files must come from the local Hugging Face cache alone: offline mode, or a hub
    that gives no answer; None when they may be downloaded. Asks the hub unless offline."""
    if offline():
        return "offline mode is on (HF_HUB_OFFLINE=1)"
    reason = hub_unreachable()
    return f"the Hugging Face hub cannot be reached ({reason})" if reason else None


def cached_snapshot(repo_id: str) -> str | None:
    """The folder of ``repo_id``'s cached snapshot in the Hugging Face cache, without asking
    the hub; None when it is not cached."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(repo_id, local_files_only=True)
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (library errors can be pages long)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


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


def incomplete_folder(folder: str | Path) -> str | None:
    """Why a diffusers folder cannot load for want of parts: the components its
    model_index.json names with no subfolder (an interrupted download, a copy that left one
    out); None when all are there. The safety checker is not counted: it is never loaded."""
    folder = Path(folder)
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # unreadable: the loader's own error says so
    missing = sorted(name for name, value in index.items()
                     if not name.startswith("_") and name != "safety_checker"
                     and isinstance(value, list) and len(value) == 2 and all(value)
                     and not (folder / name).is_dir())
    if not missing:
        return None
    parts = ", ".join(f"{name}/" for name in missing)
    return (f"model folder {folder} has no {parts}, which its model_index.json names: an "
            "incomplete download or copy")


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


_SAMPLE = 1 << 20


def _samples(fh, size: int):
    """Four megabytes of an open file, at its start, thirds and end (they overlap below 4 MB)."""
    for offset in (0, size // 3, (2 * size) // 3, max(0, size - _SAMPLE)):
        fh.seek(offset)
        yield fh.read(_SAMPLE)


def model_hash(ref: ModelRef) -> str | None:
    """A cheap identity of the weights (the catalog's model hash); for a hub id, its cached
    revision (None when it is not cached).

    Hashing gigabytes on every start would cost minutes. For a folder: every config's bytes and
    every file's size. For a single file: its size, its safetensors header (tensor names, shapes
    and offsets) and a few sampled megabytes of the weights.
    """
    # Kept as first written: the catalog compares it with the hashes of earlier runs.
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
        with open(path, "rb") as fh:
            for block in _samples(fh, size):
                digest.update(block)
        if ref.config:
            digest.update(ref.config.encode())
        return digest.hexdigest()[:16]
    # A hub id: the revision in the local cache (its commit), so a newer one downloaded since
    # (the cache's refs/main moved) makes the outputs made with the old one stale.
    snapshot = cached_snapshot(ref.location)
    return Path(snapshot).name[:16] if snapshot else None


# (path, size, mtime) -> identity: a run does not re-read files that did not change.
_IDENTITIES: dict[tuple[str, int, int], str] = {}


def file_identity(path: Path) -> str:
    """A cheap content identity of a local file or folder (16 hex digits).

    A file: its size and four sampled megabytes (all of it up to 4 MB: every
    textual-inversion embedding is read whole). A folder: each file's relative name and identity.
    """
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        for item in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{item.relative_to(path).as_posix()}\0{file_identity(item)}\n".encode())
        return digest.hexdigest()[:16]
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    known = _IDENTITIES.get(key)
    if known is not None:
        return known
    size = stat.st_size
    digest.update(str(size).encode())
    with open(path, "rb") as fh:
        if size <= 4 * _SAMPLE:
            digest.update(fh.read())
        else:
            for block in _samples(fh, size):
                digest.update(block)
    identity = digest.hexdigest()[:16]
    if time.time_ns() - stat.st_mtime_ns > 2_000_000_000:
        # Only settled files: a file rewritten within the clock's granularity would keep
        # its (size, mtime) and the cache would hide the change (git's "racy" files).
        _IDENTITIES[key] = identity
    return identity


def adapters_hash(settings) -> str | None:
    """One identity for the files a recipe's run reads besides its model (LoRAs, embeddings,
    VAE, ControlNet, IP-Adapter), like A1111's "Lora hashes"; None when it names none.

    A file replaced under the same name gives another identity: the outputs made with the old
    one are stale. References that are not local files (hub ids) count by name.
    """
    refs = _adapter_refs(settings)
    if not refs:
        return None
    digest = hashlib.sha256()
    for kind, value, extra in refs:
        local = Path(settings.resolve_path(value))
        identity = file_identity(local) if local.exists() else "name:" + value
        digest.update(f"{kind}\0{extra}\0{identity}\n".encode())
    return digest.hexdigest()[:16]


def _adapter_refs(settings) -> list[tuple[str, str, str]]:
    """(kind, reference, what else identifies its use) for every file a run reads besides its
    model."""
    refs = [("lora", spec.path, str(spec.weight)) for spec in settings.loras]
    refs += [("embedding", spec.path, spec.token) for spec in settings.embeddings]
    if settings.vae:
        refs.append(("vae", settings.vae, ""))
    if settings.refiner is not None:
        refs.append(("refiner", settings.refiner.model, ""))
    # A run's settings have their caption filled in already; a recipe's still to fill.
    if getattr(settings, "captioned", False) or wants_caption(settings):
        refs.append(("captioner", settings.captioner or DEFAULT_CAPTIONER, ""))
    for unit in settings.controlnets:
        refs.append(("controlnet", unit.model, ""))
        if unit.estimator:
            refs.append(("controlnet.preprocessor-model", unit.estimator, ""))
    if settings.ip_adapter is not None and not settings.ip_adapter.native:
        refs.append(("ip-adapter", settings.ip_adapter.model, ""))
    return refs


def names_a_path(ref: str) -> bool:
    """True when ``ref`` can only mean a local file or folder, not a hub id: absolute, ``./`` or
    ``~``, nested deeper than org/name, or a weights file's name."""
    return (not _HUB_ID.match(ref) or ref.startswith(("/", ".", "~"))
            or ref.lower().endswith(SINGLE_FILE_SUFFIXES + PICKLE_SUFFIXES))


def missing_files(settings) -> list[str]:
    """What a recipe's run would read besides its model (LoRAs, embeddings, VAE, ControlNet,
    IP-Adapter) that names a local path with nothing there, each as "kind path". Hub ids are
    not asked about (that is the hub's to answer when they load); the reference photo is the
    recipe loader's to check."""
    # Named as the recipe's fields are (the hash's "ip-adapter" is the recipe's ip_adapter).
    return [f"{kind.replace('-', '_')} {value}" for kind, value, _ in _adapter_refs(settings)
            if names_a_path(value) and not Path(settings.resolve_path(value)).exists()]
