"""A reference photo the model reads itself: a recipe's ip_adapter with ``model = "native"``.

FLUX.2 [klein] takes reference photos (up to 4) as extra image tokens beside the photo it edits
(BFL's multi-reference editing, ComfyUI's ReferenceLatent), so style matching needs no
IP-Adapter on it: the references go to its pipeline as ``image_reference`` and the prompt says
what to take from them ("image 2"). No adapter is loaded, so there is no scale to set.
"""

from __future__ import annotations


def native_reference_problem(settings, family) -> str | None:
    """Why ``settings``' ip_adapter (RunSettings) cannot hand its reference to a ``family``
    model itself, as a sentence for the user, or None when it can (or names an adapter)."""
    spec = settings.ip_adapter
    if spec is None or not spec.native:
        return None
    if not family.reference_input:
        return (f"ip_adapter model \"native\" hands the reference photo to the model itself, "
                f"which FLUX.2 [klein] models take and {family.label} models do not: name an "
                f"IP-Adapter as the ip_adapter model under [family.{family.name}]")
    if len(spec.references) > family.reference_input:
        return (f"{family.label} models read at most {family.reference_input} reference photos "
                f"(ip_adapter model \"native\"), not {len(spec.references)}: give "
                f"ip_adapter.reference {family.reference_input} or fewer")
    if spec.scale != 1.0:
        return (f"ip_adapter scale {spec.scale} has no meaning when the model reads the reference "
                f"itself (model \"native\": no adapter is scaled); set scale = 1.0 under "
                f"[family.{family.name}.ip_adapter]")
    return None


def native_reference_arguments(spec, read) -> dict:
    """The pipeline keyword arguments that hand ``spec``'s reference photos, read with ``read``
    (a path -> an sRGB picture), to the model (several: each its own image to it, at the first
    one's size)."""
    pictures = [read(path) for path in spec.references] or [read("")]
    return {"image_reference": pictures[0] if len(pictures) == 1 else pictures}


def native_reference_count(settings) -> int:
    """How many reference photos ``settings`` hands to the model itself (0: none)."""
    spec = settings.ip_adapter
    return len(spec.references) if spec is not None and spec.native else 0


__all__ = ["native_reference_arguments", "native_reference_count", "native_reference_problem"]
