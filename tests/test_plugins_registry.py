"""Contributions: name-keyed registries, duplicate names naming both plugins, broken hooks."""

from __future__ import annotations

import pytest

from photobatch.daemon.app import App
from photobatch.plugins import hookimpl
from photobatch.plugins.manager import PluginError, build_plugin_manager, collect


class Step:
    def __init__(self, name):
        self.name = name

    def apply(self, image, params, source):
        return image


def plugin(class_name: str, hook: str, items):
    """A plugin object named ``class_name`` whose ``hook`` returns ``items``."""
    def impl(self):
        return items() if callable(items) else items

    impl.__name__ = hook
    return type(class_name, (), {hook: hookimpl(impl)})()


def host_with(*plugins, builtins=False):
    return build_plugin_manager(builtins=builtins, entrypoints=False, extra=plugins)


def test_contributions_are_keyed_by_name_with_their_owner():
    host = host_with(plugin("Sharpening", "photobatch_steps", [Step("sharpen"), Step("unsharp")]),
                     plugin("Grain", "photobatch_steps", [Step("grain")]))
    steps = collect(host, "photobatch_steps")
    assert steps.kind == "step" and len(steps) == 3
    assert sorted(steps.items) == ["grain", "sharpen", "unsharp"]
    assert steps.owner("grain") == "Grain" and steps.owner("sharpen") == "Sharpening"
    assert "grain" in steps and steps.get("grain").name == "grain"
    with pytest.raises(KeyError, match=r"no step called 'blur' \(known: grain, sharpen, unsharp\)"):
        steps.get("blur")


def test_a_duplicate_name_is_an_error_naming_both_plugins():
    host = host_with(plugin("Sharpening", "photobatch_steps", [Step("sharpen")]),
                     plugin("BetterSharpening", "photobatch_steps", [Step("sharpen")]))
    with pytest.raises(PluginError) as err:
        collect(host, "photobatch_steps")
    assert str(err.value) == ("step 'sharpen' is contributed by both 'Sharpening' and "
                              "'BetterSharpening' (uninstall or disable one of them)")


def test_a_plugin_clashing_with_a_builtin_stops_the_app_until_one_is_disabled(tmp_path):
    class OtherJpeg:
        name, extension = "jpeg", ".jpeg"

        def write(self, image, path, **options):
            image.save(path, format="JPEG")

    clash = build_plugin_manager(entrypoints=False, extra=[plugin("MozJpeg", "photobatch_writers", [OtherJpeg()])])
    with pytest.raises(PluginError, match="writer 'jpeg' is contributed by both "
                                          "'photobatch.plugins.builtin.jpeg_writer' and 'MozJpeg'"):
        App(catalog_path=tmp_path / "c.db", plugin_manager=clash)

    replaced = build_plugin_manager(entrypoints=False, disabled_plugins=["photobatch.plugins.builtin.jpeg_writer"],
                                    extra=[plugin("MozJpeg", "photobatch_writers", [OtherJpeg()])])
    app = App(catalog_path=tmp_path / "c.db", plugin_manager=replaced)
    assert app.writers.get("jpeg").extension == ".jpeg" and app.writers.owner("jpeg") == "MozJpeg"


@pytest.mark.parametrize("hook, item, message", [
    ("photobatch_steps", Step(""), "plugin 'P' contributed a step without a name"),
    ("photobatch_steps", type("S", (), {"name": "flat"})(), "step 'flat' from plugin 'P' has no apply() method"),
    ("photobatch_readers", type("R", (), {"name": "heic", "read": lambda s, p: None})(),
     "reader 'heic' from plugin 'P' has no accept() method"),
    ("photobatch_face_detectors", type("F", (), {"name": "haar"})(),
     "face detector 'haar' from plugin 'P' has no detect() method"),
    ("photobatch_exporters", type("E", (), {"name": "gallery"})(),
     "exporter 'gallery' from plugin 'P' has no export() method"),
])
def test_a_contribution_missing_its_contract_is_an_error_naming_the_plugin(hook, item, message):
    with pytest.raises(PluginError) as err:
        collect(host_with(plugin("P", hook, [item])), hook)
    assert str(err.value).startswith(message)


def test_a_contribution_hook_that_is_not_a_list_is_an_error():
    with pytest.raises(PluginError, match=r"plugin 'P': photobatch_steps must return a list, got"):
        collect(host_with(plugin("P", "photobatch_steps", "sharpen")), "photobatch_steps")


def test_a_contribution_hook_that_raises_is_recorded_and_skipped(caplog):
    def boom():
        raise RuntimeError("no licence")

    host = host_with(plugin("Broken", "photobatch_steps", boom), plugin("Fine", "photobatch_steps", [Step("ok")]))
    steps = collect(host, "photobatch_steps")
    assert list(steps.items) == ["ok"]
    [failure] = host.failures
    assert (failure.plugin, failure.hook, failure.error) == ("Broken", "photobatch_steps",
                                                             "RuntimeError: no licence")
    assert "plugin 'Broken' failed in photobatch_steps: RuntimeError: no licence" in caplog.text


def test_the_app_owns_a_registry_per_kind(tmp_path):
    class Detector:
        name = "haar"

        def detect(self, image):
            return [(0, 0, 10, 10)]

    host = build_plugin_manager(entrypoints=False, extra=[
        plugin("Faces", "photobatch_face_detectors", [Detector()]),
        plugin("Steps", "photobatch_steps", [Step("grain")]),
        plugin("Folders", "photobatch_recipe_dirs", [tmp_path / "nothing-here"]),
    ])
    app = App(catalog_path=tmp_path / "c.db", plugin_manager=host)
    assert app.readers.get("pillow") and app.writers.get("jpeg")
    assert list(app.steps.items) == ["grain"] and app.face_detectors.owner("haar") == "Faces"
    assert "color-correct" in app.recipes
    other = App(catalog_path=tmp_path / "d.db", plugin_manager=build_plugin_manager(entrypoints=False))
    assert len(other.steps) == 0  # registries belong to the App, not to the module
