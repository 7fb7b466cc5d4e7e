"""Plugin discovery: built-ins, the ``photobatch`` entry-point group, drop-in files, disabling."""

from __future__ import annotations

import logging
import sys
import textwrap
from importlib.metadata import version
from pathlib import Path

import pytest

from photobatch.plugins import hookimpl
from photobatch.plugins.failures import LOAD, REGISTER
from photobatch.plugins.manager import BUILTIN_PLUGINS, build_plugin_manager


def write_dist(site: Path, dist: str, dist_version: str, entry_points: dict[str, str],
               modules: dict[str, str]) -> None:
    """An installed-looking distribution (dist-info + modules) in ``site``; put it on sys.path."""
    info = site / f"{dist.replace('-', '_')}-{dist_version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {dist_version}\n")
    (info / "entry_points.txt").write_text(
        "[photobatch]\n" + "".join(f"{n} = {t}\n" for n, t in entry_points.items()))
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))


def write_dropin(folder: Path, name: str, source: str) -> Path:
    """One drop-in plugin file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(source))
    return folder / name


STEP_PLUGIN = """
    from photobatch.plugins import hookimpl

    class Step:
        name = {name!r}
        def apply(self, image, params, source):
            return image

    @hookimpl
    def photobatch_steps():
        return [Step()]
"""


@pytest.fixture()
def site(tmp_path, monkeypatch):
    """A folder on sys.path that test distributions are "installed" into."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    for name in [m for m in sys.modules if m.startswith("pbtest_")]:
        del sys.modules[name]


def _load_failures(host):
    return {f.plugin: f for f in host.failures if f.hook == LOAD}


def test_builtins_are_registered_like_third_party_plugins():
    host = build_plugin_manager(entrypoints=False)
    assert list(host.origins) == list(BUILTIN_PLUGINS)
    assert _load_failures(host) == {}
    for name in BUILTIN_PLUGINS:
        origin = host.origins[name]
        assert (origin.source, origin.version) == ("built-in", version("photobatch"))
        assert host.hooks_of(name), f"{name} implements no hook"
        assert all(h.startswith("photobatch_") for h in host.hooks_of(name))
    assert "photobatch_readers" in host.hooks_of("photobatch.plugins.builtin.pillow_reader")


def test_entry_point_plugins_load_with_their_distribution(site):
    write_dist(site, "photobatch-sharpen", "2.3.1", {"sharpen": "pbtest_sharpen"},
               {"pbtest_sharpen": STEP_PLUGIN.format(name="sharpen")})
    host = build_plugin_manager()
    origin = host.origins["sharpen"]
    assert (origin.source, origin.version) == ("package", "2.3.1")
    assert origin.location == "photobatch-sharpen (pbtest_sharpen)"
    assert host.hooks_of("sharpen") == ["photobatch_steps"]
    assert [s.name for r in host.hook.photobatch_steps() for s in r] == ["sharpen"]


def test_a_manager_for_tests_ignores_installed_packages(site):
    write_dist(site, "photobatch-sharpen", "2.3.1", {"sharpen": "pbtest_sharpen"},
               {"pbtest_sharpen": STEP_PLUGIN.format(name="sharpen")})
    assert "sharpen" not in build_plugin_manager(entrypoints=False).origins
    assert list(build_plugin_manager(builtins=False, entrypoints=False).origins) == []


def test_broken_packages_are_logged_recorded_and_skipped(site, caplog):
    write_dist(site, "photobatch-broken", "0.1", {
        "missing-dep": "pbtest_missing_dep",
        "raises": "pbtest_raises",
        "exits": "pbtest_exits",
        "no-attr": "pbtest_good:nope",
        "good": "pbtest_good",
    }, {
        "pbtest_missing_dep": "import pbtest_not_installed_anywhere\n",
        "pbtest_raises": "raise RuntimeError('licence key missing')\n",
        "pbtest_exits": "import sys\nsys.exit(3)\n",
        "pbtest_good": STEP_PLUGIN.format(name="good-step"),
    })
    with caplog.at_level(logging.ERROR, logger="photobatch.plugins"):
        host = build_plugin_manager()
    assert "good" in host.origins  # the host starts, with the working plugin
    failures = _load_failures(host)
    assert {"missing-dep", "raises", "exits", "no-attr"} <= set(failures)
    assert "good" not in failures
    assert failures["missing-dep"].error == "ModuleNotFoundError: No module named 'pbtest_not_installed_anywhere'"
    assert failures["raises"].error == "RuntimeError: licence key missing"
    assert failures["exits"].error == "SystemExit: 3"
    assert "nope" in failures["no-attr"].error
    assert "licence key missing" in failures["raises"].traceback
    logged = [r.getMessage() for r in caplog.records]
    assert ("plugin 'raises' failed to load and was skipped: RuntimeError: licence key missing"
            in logged)


def test_disabled_plugins_are_not_even_imported(site, tmp_path):
    marker = tmp_path / "imported"
    write_dist(site, "photobatch-noisy", "1.0", {"noisy": "pbtest_noisy", "other": "pbtest_other"}, {
        "pbtest_noisy": f"open({str(marker)!r}, 'w').close()\n" + STEP_PLUGIN.format(name="noisy"),
        "pbtest_other": STEP_PLUGIN.format(name="other"),
    })
    host = build_plugin_manager(disabled_plugins=["noisy", "photobatch.plugins.builtin.jpeg_writer"])
    assert not marker.exists()
    assert "noisy" not in host.origins and "other" in host.origins
    assert set(host.disabled) == {"noisy", "photobatch.plugins.builtin.jpeg_writer"}
    assert host.disabled["noisy"].location == "photobatch-noisy (pbtest_noisy)"
    assert [s.name for r in host.hook.photobatch_steps() for s in r] == ["other"]
    assert "jpeg" not in [w.name for r in host.hook.photobatch_writers() for w in r]


def test_disabling_a_name_nobody_has_is_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="photobatch.plugins"):
        build_plugin_manager(entrypoints=False, disabled_plugins=["sharpn"])
    assert "disabled_plugins names 'sharpn', but no plugin of that name was found" in caplog.text


def test_the_same_plugin_name_from_two_packages_keeps_the_first(site):
    write_dist(site, "photobatch-a", "1.0", {"sharpen": "pbtest_a"}, {"pbtest_a": STEP_PLUGIN.format(name="a")})
    write_dist(site, "photobatch-b", "1.0", {"sharpen": "pbtest_b"}, {"pbtest_b": STEP_PLUGIN.format(name="b")})
    host = build_plugin_manager()
    kept = host.origins["sharpen"].location
    failure = _load_failures(host)["sharpen"]
    assert f"a plugin called 'sharpen' is already loaded from {kept}" in failure.error


def test_a_hook_implementation_with_wrong_arguments_is_refused(tmp_path):
    write_dropin(tmp_path / "plugins", "bad_args.py", """
        from photobatch.plugins import hookimpl

        @hookimpl
        def photobatch_output_written(output, colour):
            pass
    """)
    host = build_plugin_manager(builtins=False, entrypoints=False, plugins_dir=tmp_path / "plugins")
    assert "bad_args.py" not in host.origins
    error = _load_failures(host)["bad_args.py"].error
    assert error.startswith("invalid hook implementation: Plugin 'bad_args.py' for hook "
                            "'photobatch_output_written'")
    assert "colour" in error and "\n" not in error


def test_a_misspelt_hook_is_reported_with_a_suggestion(tmp_path):
    write_dropin(tmp_path / "plugins", "typo.py", """
        from photobatch.plugins import hookimpl

        @hookimpl
        def photobatch_output_writen(output):
            pass

        @hookimpl(optionalhook=True)
        def photobatch_future_hook():
            pass
    """)
    host = build_plugin_manager(builtins=False, entrypoints=False, plugins_dir=tmp_path / "plugins")
    assert "typo.py" in host.origins  # still loaded: the rest of it may work
    problems = [f for f in host.failures if f.hook == REGISTER]
    assert [str(p) for p in problems] == [
        "plugin 'typo.py': implements photobatch_output_writen, which is not a photobatch hook "
        "(did you mean photobatch_output_written?)"]


def test_dropin_folder_loads_each_py_file_as_a_plugin(tmp_path):
    folder = tmp_path / "plugins"
    write_dropin(folder, "b_second.py", STEP_PLUGIN.format(name="second"))
    write_dropin(folder, "a_first.py", "__version__ = '0.3'\n" + textwrap.dedent(STEP_PLUGIN.format(name="first")))
    write_dropin(folder, "_helper.py", "raise RuntimeError('helpers are not plugins')\n")
    write_dropin(folder, ".#a_first.py", "raise RuntimeError('editor lock file')\n")
    write_dropin(folder / "sub", "nested.py", "raise RuntimeError('not recursive')\n")
    (folder / "notes.txt").write_text("not python")
    host = build_plugin_manager(builtins=False, entrypoints=False, plugins_dir=folder)
    assert list(host.origins) == ["a_first.py", "b_second.py"]
    assert not host.failures
    first = host.origins["a_first.py"]
    assert (first.source, first.version, first.location) == (
        "drop-in", "0.3", str((folder / "a_first.py").resolve()))
    assert host.origins["b_second.py"].version is None


def test_a_broken_dropin_is_skipped_and_the_others_load(tmp_path):
    folder = tmp_path / "plugins"
    write_dropin(folder, "broken.py", "def oops(:\n")
    write_dropin(folder, "good.py", STEP_PLUGIN.format(name="good"))
    host = build_plugin_manager(entrypoints=False, plugins_dir=folder)
    assert "good.py" in host.origins and "broken.py" not in host.origins
    assert _load_failures(host)["broken.py"].error.startswith("SyntaxError: ")


def test_a_missing_dropin_folder_is_not_an_error(tmp_path):
    host = build_plugin_manager(builtins=False, entrypoints=False, plugins_dir=tmp_path / "nope")
    assert not host.failures


def test_dropins_with_the_same_file_name_in_two_folders_stay_apart(tmp_path):
    hosts = []
    for word in ("one", "two"):
        write_dropin(tmp_path / word, "watermark.py", STEP_PLUGIN.format(name=word))
        hosts.append(build_plugin_manager(builtins=False, entrypoints=False, plugins_dir=tmp_path / word))
    assert [[s.name for r in h.hook.photobatch_steps() for s in r] for h in hosts] == [["one"], ["two"]]


def test_a_dropin_can_define_dataclasses(tmp_path):
    # dataclasses look their module up in sys.modules: a drop-in must be importable like a module.
    write_dropin(tmp_path / "p", "dc.py", """
        from __future__ import annotations
        from dataclasses import dataclass
        from photobatch.plugins import hookimpl

        @dataclass(frozen=True)
        class Step:
            name: str = "dc"
            def apply(self, image, params, source):
                return image

        @hookimpl
        def photobatch_steps():
            return [Step()]
    """)
    host = build_plugin_manager(builtins=False, entrypoints=False, plugins_dir=tmp_path / "p")
    assert not host.failures and "dc.py" in host.origins


def test_extra_plugins_register_under_their_class_name():
    class Listener:
        @hookimpl
        def photobatch_run_failed(self, error):
            pass

    host = build_plugin_manager(builtins=False, entrypoints=False, extra=[Listener(), Listener()])
    assert list(host.origins) == ["Listener", "Listener#2"]
    assert host.origins["Listener"].source == "extra"
