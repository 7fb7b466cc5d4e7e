"""``install/install-service.sh``: the per-user service file, and the config it will start with
checked at install time, as the service will see it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from photobatch.daemon.watch_check import LOW_SPACE_BYTES

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent


def _install(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("PHOTOBATCH_", "XDG_")) and k != "VIRTUAL_ENV"}
    return subprocess.run(["bash", str(REPO / "install" / "install-service.sh"), "--systemd",
                           "--venv", str(VENV), *args], capture_output=True, text=True,
                          timeout=120, env={**clean, "HOME": str(home), **env})


def test_the_unit_is_installed_and_the_config_it_will_read_is_checked(tmp_path):
    home = tmp_path / "home"
    config_dir = home / ".config" / "photobatch"
    config_dir.mkdir(parents=True)
    (config_dir / "config.toml").write_text(
        f'[defaults]\nmodel = "test/some-model"\n[[watch]]\npath = "{tmp_path / "inbox"}"\n'
        f'recipes = ["colour-correct"]\noutput = "{tmp_path / "out"}"\n')
    # This shell's PHOTOBATCH_CONFIG is not the service's: its own file is what gets checked.
    good = tmp_path / "good.toml"
    good.write_text(f'[defaults]\nmodel = "test/some-model"\n[[watch]]\npath = "{tmp_path / "inbox"}"\n'
                    f'recipes = ["color-correct"]\noutput = "{tmp_path / "out"}"\n')
    result = _install(home, PHOTOBATCH_CONFIG=str(good))
    assert result.returncode == 0, result.stderr
    unit = home / ".config" / "systemd" / "user" / "photobatch.service"
    assert f'ExecStart="{VENV}/bin/photobatch" watch' in unit.read_text().splitlines()
    assert "names 'colour-correct', which is not a recipe" in result.stderr
    assert "photobatch: warning: photobatch watch --check found the problems above" in result.stderr

    # Mended: the check says what the service will watch, and installing again changes nothing.
    (config_dir / "config.toml").write_text(good.read_text())
    again = _install(home)
    assert again.returncode == 0 and f"folder   {tmp_path / 'inbox'}" in again.stdout
    assert "not a recipe" not in again.stderr
    # The output disk's free space is checked too: a nearly full test disk is the check's one
    # problem then (near the limit, the space other tests write may tip it either way).
    free, margin = shutil.disk_usage(tmp_path).free, 1024 ** 3
    if free > LOW_SPACE_BYTES + margin:
        assert "ready: `photobatch watch` would start with this" in again.stdout
        assert "warning: photobatch watch" not in again.stderr
    elif free < LOW_SPACE_BYTES - margin:
        assert f"problem: {tmp_path / 'out'}: only " in again.stderr
    assert f"photobatch: {unit} is up to date" in again.stdout


def test_print_renders_the_unit_and_checks_nothing(tmp_path):
    printed = _install(tmp_path, "--print")
    assert printed.returncode == 0 and f'ExecStart="{VENV}/bin/photobatch" watch' in printed.stdout
    assert "--check" not in printed.stdout + printed.stderr and not (tmp_path / ".config").exists()
