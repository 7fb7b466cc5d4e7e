"""``photobatch plugins``, ``--plugins-dir`` and plugin-contributed commands on the command line."""

from __future__ import annotations

import json
import textwrap
from importlib.metadata import version

import pytest
from click.testing import CliRunner

from photobatch.daemon.cli import main

HELLO = """
    import click
    from photobatch.plugins import hookimpl

    __version__ = "0.2"

    @click.command()
    @click.option("--name", default="world", help="Who to greet.")
    def hello(name):
        \"\"\"Say hello.\"\"\"
        click.echo(f"hello {name}")

    class Grain:
        name = "grain"
        def apply(self, image, params, source):
            return image

    @hookimpl
    def photobatch_commands():
        return [hello]

    @hookimpl
    def photobatch_steps():
        return [Grain()]

    @hookimpl
    def photobatch_output_written(output):
        pass
"""


def invoke(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)


@pytest.fixture()
def dropins(tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "hello.py").write_text(textwrap.dedent(HELLO))
    return folder


def test_plugins_lists_builtins_with_version_source_and_hooks():
    result = invoke("plugins")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["plugin", "version", "source", "hooks"]
    row = next(line for line in lines if line.startswith("photobatch.plugins.builtin.commands "))
    assert row.split() == ["photobatch.plugins.builtin.commands", version("photobatch"), "built-in", "commands"]


def test_a_dropin_folder_adds_plugins_and_commands(dropins):
    listing = invoke("--plugins-dir", dropins, "plugins")
    row = next(line for line in listing.stdout.splitlines() if line.startswith("hello.py "))
    assert row.split() == ["hello.py", "0.2", "drop-in", "commands,", "output_written,", "steps"]

    assert invoke("--plugins-dir", dropins, "hello", "--name", "Ansel").stdout == "hello Ansel\n"
    helped = invoke("--plugins-dir", dropins, "--help").stdout.splitlines()
    assert any(line.split() == ["hello", "Say", "hello."] for line in helped)
    # Commands are per invocation: the next one without the folder has no 'hello'.
    without = CliRunner().invoke(main, ["hello"])
    assert without.exit_code == 2 and "No such command 'hello'" in without.output


def test_the_plugins_dir_can_come_from_the_environment(dropins):
    env = {"PHOTOBATCH_PLUGINS_DIR": str(dropins)}
    assert invoke("hello", env=env).stdout == "hello world\n"
    # --help is eager: it lists commands before the other options are processed.
    assert "hello" in invoke("--help", env=env).stdout


def test_a_missing_plugins_dir_on_the_command_line_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["--plugins-dir", str(tmp_path / "nope"), "plugins"])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_plugins_verbose_shows_what_each_plugin_contributes(dropins):
    result = invoke("--plugins-dir", dropins, "plugins", "--verbose")
    assert result.exit_code == 0
    text = result.stdout
    assert f"hello.py 0.2 (drop-in: {dropins / 'hello.py'})" in text
    block = text.split("hello.py 0.2", 1)[1]
    assert "  commands: hello\n" in block and "  steps: grain\n" in block
    assert "  listens to: output_written\n" in block
    assert "  readers: pillow\n" in text and "  writers: jpeg\n" in text
    assert "  commands: " in text and "plugins" in text.split("  commands: ", 1)[1]


def test_plugins_json(dropins):
    data = json.loads(invoke("--plugins-dir", dropins, "plugins", "--json").stdout)
    hello = next(p for p in data["plugins"] if p["name"] == "hello.py")
    assert hello["source"] == "drop-in" and hello["version"] == "0.2"
    assert hello["hooks"] == ["photobatch_commands", "photobatch_output_written", "photobatch_steps"]
    assert hello["contributions"]["steps"] == ["grain"]
    assert data["disabled"] == []


def test_a_broken_dropin_is_reported_and_the_cli_still_works(dropins):
    (dropins / "broken.py").write_text("import not_installed_anywhere\n")
    result = invoke("--plugins-dir", dropins, "plugins")
    assert result.exit_code == 0
    assert ("plugin 'broken.py' failed to load and was skipped: ModuleNotFoundError: No module named "
            "'not_installed_anywhere'") in result.stdout
    assert "Traceback" not in result.output
    assert "hello.py" in result.stdout


def test_a_command_clashing_with_a_builtin_is_a_one_line_error(dropins):
    (dropins / "run.py").write_text(textwrap.dedent("""
        import click
        from photobatch.plugins import hookimpl

        @click.command()
        def run():
            \"\"\"My run.\"\"\"

        @hookimpl
        def photobatch_commands():
            return [run]
    """))
    result = CliRunner().invoke(main, ["--plugins-dir", str(dropins), "plugins"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "Error: command 'run' is contributed by both 'photobatch.plugins.builtin.commands' and "
        "'run.py' (uninstall or disable one of them)")
    assert "Traceback" not in result.output


def test_plugins_errors_shows_what_the_catalog_recorded(tmp_path):
    db = tmp_path / "catalog.db"
    empty = invoke("--catalog", db, "plugins", "--errors")
    assert empty.stdout == f"no plugin failures recorded in {db}\n" and not db.exists()

    from photobatch.catalog.plugin_errors import record_plugin_failures
    from photobatch.catalog.store import Catalog
    from photobatch.plugins.failures import PluginFailure

    catalog = Catalog(db)
    record_plugin_failures(lambda: catalog, [PluginFailure("hello.py", "photobatch_output_written",
                                                           "KeyError: 'exif'", at="2026-03-01T07:15:00+00:00")],
                           run_id=7)
    catalog.close()
    shown = invoke("--catalog", db, "plugins", "--errors")
    assert shown.stdout == ("2026-03-01T07:15:00+00:00  hello.py in photobatch_output_written (run 7): "
                            "KeyError: 'exif'\n")
    rows = json.loads(invoke("--catalog", db, "plugins", "--errors", "--json").stdout)
    assert [(r["plugin"], r["run_id"]) for r in rows] == [("hello.py", 7)]
