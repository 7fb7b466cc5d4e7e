"""A reference photo the model reads itself: a recipe's ip_adapter with ``model = "native"``.

FLUX.2 [klein] takes reference photos (up to 4; [dev] up to 10) as extra image tokens beside
the photo it edits (BFL's multi-reference editing, ComfyUI's ReferenceLatent), and
Qwen-Image-Edit Plus (2509 and later) up to 2, as "Picture 2" and "Picture 3" beside the photo,
"Picture 1" (its own multi-image editing), so style matching needs no IP-Adapter on them: the
references go to their pipelines as ``image_reference`` and the prompt says what to take from
them. No adapter is loaded, so there is no scale to set.
"""

from __future__ import annotations

# The families photobatch has an IP-Adapter for (the others have none to name instead).
_ADAPTER_FAMILIES = ("sd1", "sd2", "sdxl", "flux")


def native_reference_problem(settings, info) -> str | None:
    """Why ``settings``' ip_adapter (RunSettings) cannot hand its reference to the model ``info``
    (ModelInfo) describes itself, as a sentence for the user, or None when it can (or names an
    adapter)."""
    spec = settings.ip_adapter
    if spec is None or not spec.native:
        return None
    limit = info.reference_input
    if not limit:
        if info.edit:
            instead = "run this recipe with Qwen-Image-Edit 2509 or later (Qwen-Image-Edit-2511)"
        elif info.family.name in _ADAPTER_FAMILIES:
            instead = f"name an IP-Adapter as the ip_adapter model under [family.{info.table}]"
        else:
            instead = f"photobatch has no {info.family.label} IP-Adapter; leave ip_adapter out for it"
        return (f"ip_adapter model \"native\" hands the reference photo to the model itself, "
                f"which FLUX.2 and Qwen-Image-Edit Plus models take and {info.label} "
                f"models do not: {instead}")
    if len(spec.references) > limit:
        what = info.label.split(",")[0]  # (not "distilled")
        return (f"{what} models read at most {limit} reference photos (ip_adapter model "
                f"\"native\"), not {len(spec.references)}: give ip_adapter.reference {limit} or "
                f"fewer")
    if spec.scale != 1.0:
        return (f"ip_adapter scale {spec.scale} has no meaning when the model reads the reference "
                f"itself (model \"native\": no adapter is scaled); set scale = 1.0 under "
                f"[family.{info.table}.ip_adapter]")
    return None


def native_reference_arguments(spec, read) -> dict:
    """The pipeline keyword arguments that hand ``spec``'s reference photos, read with ``read``
    (a path -> an sRGB picture), to the model (several: each its own image to it)."""
    pictures = [read(path) for path in spec.references] or [read("")]
    return {"image_reference": pictures[0] if len(pictures) == 1 else pictures}


def native_reference_count(settings) -> int:
    """How many reference photos ``settings`` hands to the model itself (0: none)."""
    spec = settings.ip_adapter
    return len(spec.references) if spec is not None and spec.native else 0


__all__ = ["native_reference_arguments", "native_reference_count", "native_reference_problem"]
