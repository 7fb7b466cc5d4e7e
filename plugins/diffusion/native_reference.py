"""A reference photo the model reads itself: a recipe's ip_adapter with ``model = "native"``.

FLUX.2 [klein] takes reference photos as extra image tokens beside the photo it edits (BFL's
multi-reference editing, ComfyUI's ReferenceLatent), so style matching needs no IP-Adapter on
it: the reference goes to its pipeline as ``image_reference`` and the prompt says what to take
from it ("image 2"). No adapter is loaded, so there is no scale to set.
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
    if len(spec.references) > 1:
        return (f"{family.label} models read one reference photo here (ip_adapter model "
                f"\"native\"), not {len(spec.references)}: give ip_adapter.reference one photo")
    if spec.scale != 1.0:
        return (f"ip_adapter scale {spec.scale} has no meaning when the model reads the reference "
                f"itself (model \"native\": no adapter is scaled); set scale = 1.0 under "
                f"[family.{family.name}.ip_adapter]")
    return None


def native_reference_arguments(spec, read) -> dict:
    """The pipeline keyword arguments that hand ``spec``'s reference photo, read with ``read``
    (a path -> an sRGB picture), to the model."""
    references = spec.references  # (a list of one photo is one photo)
    return {"image_reference": read(references[0] if references else "")}


__all__ = ["native_reference_arguments", "native_reference_problem"]
