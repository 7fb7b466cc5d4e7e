"""Union ControlNets: one model that reads several condition types, told which by a mode.

xinsir's SDXL ControlNet++ (diffusers' ``ControlNetUnionModel``) and InstantX / Shakker-Labs'
FLUX.1 Union (a ``FluxControlNetModel`` with a mode embedding) take the condition type as an
index beside each control image; without it diffusers refuses the FLUX.1 one mid-run and the
SDXL one cannot run through the plain ControlNet pipelines at all. A recipe names the type by
the name on the model card (``mode = "depth"``) or leaves it to the preprocessor.
"""

from __future__ import annotations

from photobatch.recipes.runner_fields import UNION_MODES


def mode_count(config) -> int:
    """How many condition types a ControlNet with this ``config`` (its config.json, or a loaded
    model's ``config``) reads: 0 for a plain ControlNet."""
    if config.get("_class_name") == "ControlNetUnionModel":
        return int(config.get("num_control_type") or 6)
    return int(config.get("num_mode") or 0)


def is_union(net) -> bool:
    """Whether ``net`` (a loaded ControlNet) is a Union ControlNet that needs a mode."""
    return mode_count(net.config) > 0


def mode_index(unit, count: int, family: str) -> int | None:
    """The index of the condition type ``unit`` (a ControlNetSettings) asks of a ControlNet
    that reads ``count`` of them (0: a plain one, which gets None); a mode the model does not
    read is a ValueError naming it."""
    if not count:
        if unit.mode is not None:
            raise ValueError(f"controlnet {unit.model}: mode {unit.mode!r} is for Union "
                             "ControlNets, and this one is not (leave mode out)")
        return None
    wanted = unit.union_mode
    modes = UNION_MODES.get(family, {})
    if isinstance(wanted, str):
        index = modes.get(wanted)
        if index is None or index >= count:
            how = "asks for" if unit.mode is not None else f"preprocessor {unit.preprocessor!r} makes"
            known = ", ".join(name for name, i in modes.items() if i < count)
            raise ValueError(f"controlnet {unit.model}: the unit {how} {wanted!r}, which this "
                             f"Union ControlNet does not read; set mode to one of {known}")
        return index
    if wanted >= count:
        raise ValueError(f"controlnet {unit.model}: mode {wanted} is not among this Union "
                         f"ControlNet's {count} condition types (0-{count - 1})")
    return wanted


def shared_union(nets) -> object | None:
    """The one Union ControlNet that every unit names (SDXL's union pipelines take one model
    and a mode per control image), or None when the units name plain ControlNets; a mix is a
    ValueError, since diffusers has no pipeline for it."""
    unions = [net for net in nets if is_union(net)]
    if not unions:
        return None
    if len(unions) != len(nets) or any(net is not unions[0] for net in unions):
        raise ValueError("a Union ControlNet on SDXL takes all of a recipe's controlnet units "
                         "(one model, a mode each); it does not go with other ControlNets")
    return unions[0]


def union_arguments(controlnet, units, family: str, n: int, control_image) -> dict:
    """The pipeline keyword arguments the condition types add for ``units`` on ``n`` images:
    ``control_mode``, and for SDXL's union pipelines the control images grouped a list per
    mode (``control_image``, as ``control_arguments`` made it); empty for plain ControlNets
    (but for several on FLUX.1, which take a None mode each)."""
    nets = list(getattr(controlnet, "nets", None) or [controlnet] * len(units))
    modes = [mode_index(unit, mode_count(net.config), family) for unit, net in zip(units, nets)]
    if family == "flux" and len(units) > 1:
        # A mode per unit, None for plain ones: diffusers' FLUX.1 multi-ControlNet iterates over
        # the modes, and without one per unit it runs none of the units.
        return {"control_mode": modes}
    if all(mode is None for mode in modes):
        return {}
    if family == "flux":
        # A mode per image: diffusers' FLUX.1 Union takes a batch only so.
        return {"control_mode": modes * n}
    return {"control_mode": modes, "control_image": [control_image] if len(units) == 1 else control_image}
