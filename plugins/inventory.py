"""What is loaded: each plugin's origin, the hooks it implements and what it contributes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from photobatch.plugins.events import EVENTS
from photobatch.plugins.failures import LOAD, REGISTER, one_line
from photobatch.plugins.host import PluginHost
from photobatch.plugins.registry import CONTRIBUTION_HOOKS

HOOK_PREFIX = "photobatch_"


@dataclass
class PluginInfo:
    """One plugin as ``photobatch plugins`` shows it."""

    name: str
    source: str
    version: str | None
    location: str
    hooks: list[str]
    contributions: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain data for JSON output."""
        return asdict(self)


def describe_plugins(host: PluginHost, contributions: bool = False) -> list[PluginInfo]:
    """Every loaded plugin in load order; with ``contributions``, what each one contributes."""
    infos = []
    for name, origin in host.origins.items():
        info = PluginInfo(name, origin.source, origin.version, origin.location, host.hooks_of(name))
        if contributions:
            info.contributions = _contributions_of(host, name)
        infos.append(info)
    return infos


def short_hook(name: str) -> str:
    """``photobatch_steps`` -> ``steps``."""
    return name[len(HOOK_PREFIX):] if name.startswith(HOOK_PREFIX) else name


def _contributions_of(host: PluginHost, name: str) -> dict[str, list[str]]:
    plugin = host.get_plugin(name)
    found: dict[str, list[str]] = {}
    for hook_name in host.hooks_of(name):
        impls = [i for i in getattr(host.hook, hook_name).get_hookimpls() if i.plugin is plugin]
        if hook_name in CONTRIBUTION_HOOKS or hook_name == "photobatch_recipe_dirs":
            kind = CONTRIBUTION_HOOKS.get(hook_name, ("recipe folder",))[0]
            for impl in impls:
                try:
                    items = list(impl.function() or ())
                except Exception as exc:  # shown, not raised: this command is for diagnosing
                    items = [f"(failed: {type(exc).__name__}: {one_line(exc)})"]
                # Recipe folders are paths: show them whole, not their last part (Path.name).
                found.setdefault(kind + "s", []).extend(
                    str(item) if kind == "recipe folder" else str(getattr(item, "name", item))
                    for item in items)
        elif hook_name in EVENTS:
            found.setdefault("listens to", []).append(short_hook(hook_name))
        else:
            found.setdefault("other hooks", []).append(short_hook(hook_name))
    return found


def load_problems(host: PluginHost) -> list[str]:
    """One line per plugin that failed to load or implements a hook that does not exist."""
    seen, lines = set(), []
    for failure in host.failures:
        if failure.hook in (LOAD, REGISTER):
            line = str(failure)
            if line not in seen:
                seen.add(line)
                lines.append(line)
    return lines
