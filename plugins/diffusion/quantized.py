"""Diffusers folders saved with quantized weights (``quantization_config`` in a part's
config.json: bitsandbytes nf4/int8, torchao, quanto), and what loading them needs.

diffusers reads such a folder as it is, but only with the quantizer's package installed, and
bitsandbytes only on a GPU; without them it fails deep inside loading with a bare package or
"No GPU found" error. Told before the first photo instead, with what to do.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

# quant_method -> (the package to install, the module it provides, GPU only)
_NEEDS = {
    "bitsandbytes": ("bitsandbytes", "bitsandbytes", True),
    "torchao": ("torchao", "torchao", False),
    "quanto": ("optimum-quanto", "optimum.quanto", False),
}


def _describe(config: dict) -> str:
    method = str(config.get("quant_method", "?"))
    if method == "bitsandbytes":
        if config.get("load_in_4bit") or config.get("_load_in_4bit"):
            return f"bitsandbytes 4-bit {config.get('bnb_4bit_quant_type', 'fp4')}"
        return "bitsandbytes 8-bit"
    kind = config.get("quant_type") or config.get("weights_dtype") or config.get("weights")
    if isinstance(kind, dict):  # torchao's serialised config objects
        kind = kind.get("default", {}).get("_type") if isinstance(kind.get("default"), dict) else None
    return f"{method} {kind}" if isinstance(kind, str) else method


def quantized_parts(folder: str | Path) -> dict[str, dict]:
    """Each part of a diffusers folder saved quantized (transformer, text_encoder_2, ...) with
    its ``quantization_config``; empty for a plain folder."""
    found = {}
    try:
        parts = sorted(p for p in Path(folder).iterdir() if p.is_dir())
    except OSError:
        return {}
    for part in parts:
        try:
            config = json.loads((part / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        quant = config.get("quantization_config") if isinstance(config, dict) else None
        if isinstance(quant, dict) and quant.get("quant_method"):
            found[part.name] = quant
    return found


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing (optimum for optimum.quanto)
        return False


def quantized_folder_problem(folder: str | Path, device: str, label: str) -> str | None:
    """Why the quantized weights of ``folder`` cannot load on ``device`` here (a package not
    installed, bitsandbytes off a GPU), or None. ``label`` names the model in the message."""
    by_kind: dict[str, list[str]] = {}
    methods: dict[str, str] = {}
    for part, config in quantized_parts(folder).items():
        kind = _describe(config)
        by_kind.setdefault(kind, []).append(part)
        methods[kind] = str(config["quant_method"])
    for kind, parts in by_kind.items():
        need = _NEEDS.get(methods[kind])
        if need is None:
            continue  # a quantizer diffusers may know better (modelopt, ...): let it try
        package, module, gpu_only = need
        what = f"{label} holds {kind} weights ({', '.join(parts)})"
        if gpu_only and device.split(":")[0] == "cpu":
            return (f"{what}, which diffusers loads only on a GPU, and this runs on the CPU: "
                    "run it on a CUDA device, or use the model's unquantized folder or a GGUF file")
        if not _installed(module):
            return (f"{what}, which need the {package} package: install it with "
                    f"{sys.executable} -m pip install {package}")
    return None
