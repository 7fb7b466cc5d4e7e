"""Words for a photo's panel: camera, lens, exposure, date, place; the recipe and its settings.

Plain strings only; the page escapes them. Location is included only when asked for: a
gallery is often shared, and coordinates say where someone lives.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

# Recipe parameters a photographer reads first, in this order, with their labels.
MAIN_PARAMS = (
    ("prompt", "Prompt"), ("negative_prompt", "Negative prompt"), ("strength", "Strength"),
    ("steps", "Steps"), ("cfg", "CFG scale"), ("true_cfg", "True CFG scale"), ("sampler", "Sampler"),
    ("schedule", "Schedule type"), ("working_size", "Working size"),
    ("full_resolution", "Full size by"), ("color_match", "Colour match"),
)


def camera_text(meta: Mapping[str, Any]) -> str | None:
    """"FUJIFILM X-T5"; the make is left out when the model already names it ("Canon EOS R6")."""
    make, model = (meta.get("make") or "").strip(), (meta.get("model") or "").strip()
    if model and make and model.lower().startswith(make.split()[0].lower()):
        return model
    return " ".join(p for p in (make, model) if p) or None


def exposure_text(meta: Mapping[str, Any]) -> str | None:
    """"1/250 s · f/5.6 · ISO 200 · 23 mm" from what is known."""
    parts = []
    if meta.get("exposure_time"):
        parts.append(f"{meta['exposure_time']} s")
    if meta.get("f_number"):
        parts.append(f"f/{_number(meta['f_number'])}")
    if meta.get("iso"):
        parts.append(f"ISO {meta['iso']}")
    if meta.get("focal_length"):
        parts.append(f"{_number(meta['focal_length'])} mm")
    return " · ".join(parts) or None


def date_text(value: str | None, *, local: bool = False) -> str | None:
    """"Sun 21 Jun 2026, 19:42", or the text as recorded when it is not a date.

    A capture time is shown on the photo's own clock (where it was taken); ``local`` converts
    a UTC time stamp (when a run finished) to this computer's time zone instead.
    """
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return str(value)
    if local and moment.tzinfo is not None:
        moment = moment.astimezone()
    return f"{moment:%a} {moment.day} {moment:%b %Y, %H:%M}"


def location_text(meta: Mapping[str, Any]) -> str | None:
    """"48.85840° N, 2.29450° E, 35 m" or None without coordinates."""
    lat, lon = meta.get("gps_lat"), meta.get("gps_lon")
    if lat is None or lon is None:
        return None
    text = (f"{abs(lat):.5f}° {'N' if lat >= 0 else 'S'}, "
            f"{abs(lon):.5f}° {'E' if lon >= 0 else 'W'}")
    if meta.get("gps_alt") is not None:
        text += f", {meta['gps_alt']:.0f} m"
    return text


def map_link(meta: Mapping[str, Any]) -> str | None:
    """An OpenStreetMap link for the coordinates (followed only if the viewer clicks it)."""
    lat, lon = meta.get("gps_lat"), meta.get("gps_lon")
    if lat is None or lon is None:
        return None
    return f"https://www.openstreetmap.org/?mlat={lat:.6f}&mlon={lon:.6f}#map=15/{lat:.6f}/{lon:.6f}"


def rating_text(meta: Mapping[str, Any]) -> str | None:
    """"★★★★☆ · Red": the photographer's stars ("rejected" for -1) and colour labels."""
    rating = meta.get("rating")
    labels = meta.get("labels") or ([meta["label"]] if meta.get("label") else [])
    stars = None
    if isinstance(rating, int):
        stars = "rejected" if rating < 0 else "★" * rating + "☆" * (5 - rating)
    return " · ".join(filter(None, [stars, ", ".join(labels)])) or None


def photo_facts(meta: Mapping[str, Any], *, gps: bool) -> list[tuple[str, str]]:
    """(label, value) rows of the EXIF panel; location only with ``gps``."""
    exif = meta.get("exif") or {}
    rows = [
        ("Camera", camera_text(meta)),
        ("Lens", meta.get("lens")),
        ("Exposure", exposure_text(meta)),
        ("Taken", date_text(meta.get("date_taken"))),
        ("Rating", rating_text(meta)),
        ("Keywords", ", ".join(meta.get("keywords") or [])),
        ("Artist", exif.get("Exif.Image.Artist")),
        ("Copyright", exif.get("Exif.Image.Copyright")),
    ]
    if gps:
        rows.append(("Location", location_text(meta)))
    return [(label, str(value)) for label, value in rows if value not in (None, "")]


def recipe_facts(params: Mapping[str, Any], seed: int | None, model: str | None,
                 processed_at: str | None) -> list[tuple[str, str]]:
    """(label, value) rows of the recipe panel: the main settings, seed, model, when."""
    rows = [(label, _value(params[key]).replace("-", " ") if key == "full_resolution"
             else _value(params[key]))
            for key, label in MAIN_PARAMS if params.get(key) not in (None, "", False)]
    steps, strength = params.get("steps"), params.get("strength")
    if isinstance(steps, int) and isinstance(strength, (int, float)):
        # What really runs: diffusers and A1111 denoise int(steps * strength) steps, unless
        # the recipe asked for all of them (A1111's "exact steps", how distilled models run).
        ran = "all denoising, exact steps" if params.get("exact_steps") else f"{int(steps * strength)} denoising"
        rows = [(label, f"{value} ({ran})" if label == "Steps" else value) for label, value in rows]
    rows += reference_facts(params.get("ip_adapter"))
    if seed is not None:
        rows.append(("Seed", str(seed)))
    if model:
        rows.append(("Model", model_name(model)))
    if processed_at:
        rows.append(("Processed", date_text(processed_at, local=True) or processed_at))
    return rows


def reference_facts(ip_adapter: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The style reference rows: its photo's file name (not the folder: a gallery is shared)
    and, where an adapter was scaled, how strongly it counted."""
    if not isinstance(ip_adapter, Mapping) or not ip_adapter.get("reference"):
        return []
    references = ip_adapter["reference"]
    names = [Path(str(r)).name for r in (references if isinstance(references, (list, tuple)) else [references])]
    rows = [("Style reference", ", ".join(names))]
    if ip_adapter.get("model") == "native":
        rows.append(("Reference read by", "the model itself"))
    elif ip_adapter.get("scale") is not None:
        rows.append(("Reference scale", _value(ip_adapter["scale"])))
    return rows


def all_params(params: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Every recorded parameter flattened ("output.quality": "95"; a list of tables numbered
    from 1: "loras.1.weight": "0.8"), empty ones left out; a file or folder named by its
    absolute path by its name alone (a gallery is shared, the paths say who and where)."""
    rows: list[tuple[str, str]] = []
    for key in sorted(params):
        value = params[key]
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows += all_params(value, name + ".")
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Mapping) for v in value):
            for number, table in enumerate(value, start=1):
                rows += all_params(table, f"{name}.{number}.")
        elif key in _PATH_FIELDS and value:
            rows.append((name, _value([model_name(str(v)) for v in value] if isinstance(value, (list, tuple))
                                      else model_name(str(value)))))
        elif value not in (None, "", [], ()):
            rows.append((name, _value(value)))
    return rows


# Recipe fields that name a file, folder or hub id.
_PATH_FIELDS = frozenset({"model", "model_config", "reference", "path", "vae", "captioner",
                          "preprocessor_model"})


def model_name(model: str) -> str:
    """A folder's name, or a hub id as it is ("stable-diffusion-v1-5/stable-diffusion-v1-5")."""
    path = Path(model)
    return path.name if path.is_absolute() else model


def size_text(n_bytes: int) -> str:
    """"12.4 MB" / "830 KB"."""
    if n_bytes >= 1_000_000:
        return f"{n_bytes / 1_000_000:.1f} MB"
    return f"{max(1, round(n_bytes / 1000))} KB"


def _number(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{number:g}"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_value(v) for v in value)
    return str(value)
