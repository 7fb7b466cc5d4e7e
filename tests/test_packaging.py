"""The wheel holds every subpackage and every built-in recipe under the one photobatch namespace."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP_PACKAGES = {"daemon": "photobatch/daemon", "catalog": "photobatch/catalog",
                "recipes": "photobatch/recipes", "plugins": "photobatch/plugins"}


def _expected_members() -> set[str]:
    expected = set()
    for folder, target in TOP_PACKAGES.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).as_posix()
            expected.add(f"{target}/{rel}/__init__.py".replace("/./", "/"))
    for recipe in (ROOT / "recipes").glob("*.toml"):
        expected.add(f"photobatch/recipes/{recipe.name}")
    for asset in (ROOT / "plugins" / "gallery" / "assets").iterdir():
        expected.add(f"photobatch/plugins/gallery/assets/{asset.name}")
    return expected


def test_wheel_contains_every_subpackage_and_recipe(tmp_path):
    # Build from a copy: building in the checkout leaves build/ and an egg-info behind.
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info",
                                                             "__pycache__", "test-artifacts"))
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path / "dist"),
         str(src)],
        check=True, capture_output=True, text=True,
    )
    wheel = next((tmp_path / "dist").glob("photobatch-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = _expected_members()
    assert len(expected) >= 12  # the subpackages, the recipes and the gallery's assets
    assert expected - names == set()
    # Nothing leaks out of the namespace (no top-level daemon/ or plugins/ package).
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"photobatch"}
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "photobatch = photobatch.daemon.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
