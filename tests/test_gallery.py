"""``photobatch export gallery``: the files it writes, and the page in a real headless Chromium.

The shoot holds JPEGs (one rotated) and a DNG, with a malicious Make and Artist; the gallery's
title is malicious too. A drop-in runner warms each picture, so before and after differ
visibly. Chromium is driven over the DevTools protocol on a pipe (no extra package); the
screenshots land in test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from photobatch.daemon.cli import main
from photobatch.daemon.sample_formats import write_sample_dng
from photobatch.daemon.samples import write_sample_photo
from photobatch.plugins.gallery import describe
from photobatch.plugins.gallery.page import json_for_script
from photobatch.plugins.manager import build_plugin_manager, collect
from photobatch.plugins.metadata import read_summary

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

EVIL_MAKE = '<img src=x onerror="window.pwned=1">Fujifilm'
EVIL_ARTIST = "<script>window.pwned=2</script>Jane Doe"
EVIL_TITLE = '<script>window.pwned=3</script>Alps & "friends"'

RUNNER = '''
from types import SimpleNamespace

from PIL import Image, ImageEnhance

from photobatch.plugins import hookimpl


class Warm:
    name = "warm"

    def run(self, image, recipe, seed, model):
        small = image.resize((image.width // 2, image.height // 2))
        r, g, b = small.split()
        r = r.point(lambda v: min(255, int(v * 1.1 + 14)))
        b = b.point(lambda v: int(v * 0.8))
        out = ImageEnhance.Contrast(Image.merge("RGB", (r, g, b))).enhance(1.1)
        return SimpleNamespace(image=out, model_id=model, model_hash=None, device="cpu",
                               working_size=out.size)


@hookimpl
def photobatch_runners():
    return [Warm()]
'''

RECIPE = '''
name = "golden-hour"
description = "Warm, low evening light"
runner = "warm"
prompt = "golden hour, warm low sun, long shadows"
negative_prompt = "overcast, flat light"
strength = 0.5
steps = 24
cfg = 7.5
sampler = "DPM++ 2M Karras"
[output]
name = "{stem}_{recipe}"
'''


class Studio:
    """A catalogued shoot with outputs; ``cli`` runs photobatch on it."""

    def __init__(self, root: Path):
        self.root = root
        self.shoot, self.out = root / "Alps", root / "out"
        self.plugins, self.recipes = root / "plugins", root / "recipes"
        for folder in (self.shoot, self.plugins, self.recipes):
            folder.mkdir(parents=True)
        (self.plugins / "warm_runner.py").write_text(RUNNER)
        (self.recipes / "golden-hour.toml").write_text(RECIPE)
        self.catalog = root / "catalog.db"
        write_sample_photo(self.shoot / "DSCF0001.JPG", size=(900, 600), seed=1, make=EVIL_MAKE,
                           model="X-T5", artist=EVIL_ARTIST)
        write_sample_photo(self.shoot / "IMG_0002.JPG", size=(600, 900), seed=2, orientation=6,
                           make="Canon", model="Canon EOS R6m2", scene="portrait",
                           date_taken="2026:06:22 08:05:00")
        write_sample_dng(self.shoot / "DSCF0003.DNG", size=(384, 256), seed=3,
                         date_taken="2026:06:23 20:31:00")
        result = self.cli("run", self.shoot, "--recipe", "golden-hour", "--model", "test/model",
                          "--out", self.out)
        assert result.exit_code == 0, result.output

    def cli(self, *args):
        base = ["--catalog", self.catalog, "--plugins-dir", self.plugins, "--recipes", self.recipes]
        return CliRunner().invoke(main, [str(a) for a in (*base, *args)], catch_exceptions=False)

    def export(self, out: Path, *args):
        result = self.cli("export", "gallery", "--out", out, *args)
        assert result.exit_code == 0, result.output
        return result


def private_home(mp: pytest.MonkeyPatch, root: Path) -> None:
    """User folders, log and catalog under ``root``: module-scoped fixtures run before the
    per-test environment fixture, and must keep them private too."""
    for var in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        mp.setenv(var, str(root / "home" / var.lower()))
    mp.setenv("PHOTOBATCH_LOG", str(root / "photobatch.log"))
    mp.delenv("PHOTOBATCH_CATALOG", raising=False)


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    root = tmp_path_factory.mktemp("gallery")
    with pytest.MonkeyPatch.context() as mp:
        private_home(mp, root)
        studio = Studio(root)
        studio.gallery = root / "gallery"
        studio.first_export = studio.export(studio.gallery, "--title", EVIL_TITLE, "--zip")
        yield studio


def _html(studio) -> str:
    return (studio.gallery / "index.html").read_text(encoding="utf-8")


def _data(html: str) -> dict:
    block = re.search(r'<script type="application/json" id="gallery-data">(.*?)</script>', html, re.S)
    return json.loads(block.group(1))


def test_gallery_is_a_registered_exporter_command():
    assert "gallery" in collect(build_plugin_manager(entrypoints=False), "photobatch_exporters")
    listing = CliRunner().invoke(main, ["export", "--help"])
    assert "gallery" in listing.output
    helped = CliRunner().invoke(main, ["export", "gallery", "--help"])
    for option in ("--out", "--title", "--zip", "--gps", "--camera", "--since", "--stale"):
        assert option in helped.output


def test_gallery_files_are_complete_and_self_contained(studio):
    assert "gallery of 3 photo(s)" in studio.first_export.output
    assert "9 picture(s) made, 0 reused" in studio.first_export.output
    html = _html(studio)
    # Every local reference resolves inside the gallery; nothing points at the network.
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs and not [r for r in refs if re.match(r"[a-z]+:", r)]
    for ref in refs:
        assert (studio.gallery / ref).is_file(), ref
    photos = _data(html)["photos"]
    assert [p["title"] for p in photos] == ["DSCF0001.JPG", "IMG_0002.JPG", "DSCF0003.DNG"]
    for photo in photos:
        for src in (photo["after"]["src"], photo["before"]["src"], photo["download"]["href"]):
            assert (studio.gallery / src).is_file()
    portrait = photos[1]
    assert (portrait["after"]["w"], portrait["after"]["h"]) == (600, 900)  # upright
    with Image.open(studio.gallery / portrait["before"]["src"]) as before:
        assert before.size == (600, 900)  # the same size as the after: the slider lines up
    recipe = dict(portrait["recipeFacts"])
    assert recipe["Prompt"] == "golden hour, warm low sun, long shadows"
    assert recipe["Steps"] == "24 (12 denoising)" and recipe["Sampler"] == "DPM++ 2M Karras"
    assert recipe["Seed"].isdigit() and recipe["Model"] == "test/model"
    assert dict(portrait["params"])["output.name"] == "{stem}_{recipe}"
    facts = dict(portrait["facts"])
    assert facts["Camera"] == "Canon EOS R6m2" and facts["Taken"] == "Mon 22 Jun 2026, 08:05"
    assert facts["Exposure"] == "1/250 s · f/5.6 · ISO 200 · 23 mm"
    assert portrait["download"]["label"].startswith("JPEG · 600 × 900 px · ")


def test_text_from_files_and_the_title_is_escaped(studio):
    html = _html(studio)
    for evil in (EVIL_MAKE, EVIL_ARTIST, EVIL_TITLE, "window.pwned=3</script>"):
        assert evil not in html
    assert "<title>&lt;script&gt;window.pwned=3&lt;/script&gt;Alps &amp; &quot;friends&quot;</title>" in html
    assert "\\u003cscript\\u003ewindow.pwned=2" in html  # JSON data cannot close its element
    data = _data(html)
    assert data["title"] == EVIL_TITLE
    assert dict(data["photos"][0]["facts"])["Artist"] == EVIL_ARTIST
    assert json_for_script("</script><b>&") == '"\\u003c/script\\u003e\\u003cb\\u003e\\u0026"'


def test_location_stays_out_of_the_page_and_the_downloads_without_gps(studio):
    text = "".join(p.read_text("utf-8") for p in studio.gallery.rglob("*")
                   if p.suffix in (".html", ".js", ".json"))
    assert "48.858" not in text and "Location" not in text and "openstreetmap" not in text
    for download in (studio.gallery / "full").iterdir():
        summary = read_summary(download)
        assert summary["gps_lat"] is None
        assert not [k for k in summary["exif"] if k.startswith("Exif.GPSInfo")]
        assert summary["make"]  # the rest of the metadata is kept
    # The outputs themselves keep their location (the recipe's policy): only the copies lost it.
    assert read_summary(studio.out / "DSCF0001_golden-hour.jpg")["gps_lat"] is not None
    with zipfile.ZipFile(studio.gallery / "script-window-pwned-3-script-Alps-friends.zip") as zf:
        assert sorted(zf.namelist()) == sorted(p.name for p in (studio.gallery / "full").iterdir())
        for name in zf.namelist():
            assert zf.read(name) == (studio.gallery / "full" / name).read_bytes()


def test_with_gps_the_location_is_shown_and_downloads_keep_it(studio, tmp_path):
    out = tmp_path / "with-gps"
    studio.export(out, "--gps", "--camera", "R6m2", "--zip")
    html = (out / "index.html").read_text("utf-8")
    assert "Download all (1 photo, ZIP, " in html  # one photo, not "1 photos"
    assert "Download all (3 photos, ZIP, " in _html(studio)
    photo = _data(html)["photos"][0]
    assert dict(photo["facts"])["Location"] == "48.85840° N, 2.29450° E, 35 m"
    assert photo["map"].startswith("https://www.openstreetmap.org/?mlat=48.858400")
    [download] = (out / "full").iterdir()  # the zip lies beside full/
    assert download.read_bytes() == (studio.out / "IMG_0002_golden-hour.jpg").read_bytes()


def test_a_second_export_reuses_every_picture(studio):
    pictures = {p: p.stat().st_mtime_ns for p in studio.gallery.rglob("*.jpg")}
    again = studio.export(studio.gallery, "--title", EVIL_TITLE, "--zip")
    assert "0 picture(s) made, 9 reused" in again.output
    assert {p: p.stat().st_mtime_ns for p in studio.gallery.rglob("*.jpg")} == pictures


def test_the_before_picture_is_the_original_rendered_by_the_apps_readers(studio):
    from photobatch.plugins.builtin.raw_reader import RawReader

    photo = _data(_html(studio))["photos"][2]
    assert photo["title"] == "DSCF0003.DNG"

    def blocks(img):  # 8x8 block means: sensor noise and JPEG losses averaged out
        return np.asarray(img.convert("RGB").resize((48, 32), Image.Resampling.BOX), dtype=float)

    with Image.open(studio.gallery / photo["before"]["src"]) as img:
        assert img.size == (384, 256)
        before = blocks(img)
    with Image.open(studio.gallery / photo["after"]["src"]) as img:
        after = blocks(img)
    expected = blocks(RawReader().read(studio.shoot / "DSCF0003.DNG").image)
    assert np.abs(before - expected).mean() < 3  # the RAW as the app's reader renders it
    warmth = lambda px: (px[..., 0] - px[..., 2]).mean()  # noqa: E731
    assert warmth(after) > warmth(before) + 15  # and the after is the warmed output


def test_an_output_whose_original_is_gone_is_shown_alone(studio, tmp_path):
    original = studio.shoot / "DSCF0001.JPG"
    archived = tmp_path / "DSCF0001.JPG"
    original.rename(archived)
    try:
        result = studio.export(tmp_path / "g", "--camera", "X-T5")
    finally:
        archived.rename(original)
    assert "gallery of 1 photo(s)" in result.output
    [photo] = _data((tmp_path / "g" / "index.html").read_text("utf-8"))["photos"]
    assert photo["title"] == "DSCF0001.JPG" and photo["before"] is None
    assert (tmp_path / "g" / photo["after"]["src"]).is_file()


def test_a_proofing_gallery_marks_every_picture_and_offers_no_downloads(studio, tmp_path):
    out = tmp_path / "proof"
    studio.export(out, "--camera", "R6m2", "--zip")  # an earlier, open gallery in that folder
    studio.export(tmp_path / "unmarked", "--camera", "R6m2")
    assert any((out / "full").iterdir()) and list(out.glob("*.zip"))
    plain_html = (out / "index.html").read_text("utf-8")
    plain = _data(plain_html)["photos"][0]
    refused = studio.cli("export", "gallery", "--out", out, "--camera", "R6m2", "--zip",
                         "--watermark", "© Jane Doe")
    assert refused.exit_code == 1
    assert "a gallery with --watermark offers no downloads" in refused.output
    untouched = _data((out / "index.html").read_text("utf-8"))["photos"][0]
    assert untouched["download"] is not None and untouched == plain

    studio.export(out, "--camera", "R6m2", "--watermark", "© Jane Doe")
    html = (out / "index.html").read_text("utf-8")
    [photo] = _data(html)["photos"]
    assert photo["download"] is None and "Download all" not in html
    assert not list(out.glob("*.zip")) and not any((out / "full").iterdir())  # none left behind
    def thumb(page):
        return re.search(r'<img src="(thumbs/[^"]+)"', page).group(1)

    pairs = {"thumb": (thumb(plain_html), thumb(html)),
             **{kind: (plain[kind]["src"], photo[kind]["src"]) for kind in ("after", "before")}}
    for kind, (plain_src, marked_src) in pairs.items():
        assert marked_src != plain_src  # a picture of its own, not the open one reused
        assert not (out / plain_src).exists()  # and the unmarked one is gone
        with Image.open(out.parent / "unmarked" / plain_src) as img:  # the same, unmarked
            unmarked = np.asarray(img.convert("L")).astype(float)
        with Image.open(out / marked_src) as img:
            marked = np.asarray(img.convert("L")).astype(float)
        assert marked.shape == unmarked.shape
        height, width = marked.shape
        corner = np.abs(marked - unmarked)[int(height * 0.85):, int(width * 0.5):]
        rest = np.abs(marked - unmarked)[: int(height * 0.7)]
        assert corner.max() > 60 and rest.mean() < 1.5, kind  # the text, in its corner only


def test_a_proofs_text_takes_each_photos_year_and_artist(studio, tmp_path):
    from photobatch.plugins.gallery.images import PictureCache
    from photobatch.plugins.watermark import Mark

    cache = PictureCache(tmp_path, [], watermark=(Mark(text="© {year} {artist}"), "k"))
    mark, variant = cache._mark_for({"date_taken": "2025-06-21T19:42:10",
                                     "exif": {"Exif.Image.Artist": "Ann Lee"}})
    assert mark.text == "© 2025 Ann Lee" and variant.startswith(cache.variant) and variant != cache.variant
    other, other_variant = cache._mark_for({"date_taken": "2026-01-02", "exif": {"Exif.Image.Artist": "Bo"}})
    assert other.text == "© 2026 Bo" and other_variant != variant  # each photo's own pictures
    with pytest.raises(ValueError, match=r"takes \{artist\} from the photo"):
        cache._mark_for({"date_taken": "2026-01-02", "exif": {}})
    proof = studio.export(tmp_path / "proof", "--camera", "R6m2", "--watermark", "© {year}")
    assert "1 photo(s)" in proof.output
    refused = studio.cli("export", "gallery", "--out", tmp_path / "x", "--watermark", "© {photographer}")
    assert refused.exit_code == 1 and "--watermark '© {photographer}': unknown token {photographer}" in refused.output


def test_a_folder_that_is_not_a_gallery_is_refused(studio, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = studio.cli("export", "gallery", "--out", tmp_path)
    assert result.exit_code == 1
    assert "is not empty and holds no photobatch gallery" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    nothing = studio.cli("export", "gallery", "--out", tmp_path / "g", "--camera", "leica")
    assert nothing.exit_code == 1 and "no outputs match the selection" in nothing.output


def test_panel_words():
    assert describe.camera_text({"make": "Canon", "model": "Canon EOS R5"}) == "Canon EOS R5"
    assert describe.camera_text({"make": "FUJIFILM", "model": "X-T5"}) == "FUJIFILM X-T5"
    assert describe.exposure_text({"exposure_time": "1/8000", "f_number": 1.4}) == "1/8000 s · f/1.4"
    assert describe.location_text({"gps_lat": -33.85, "gps_lon": 151.2}) == "33.85000° S, 151.20000° E"
    # The steps that ran: int(steps x strength), or all of them with exact steps (how a distilled
    # model such as Z-Image Turbo is run).
    steps = {"steps": 8, "strength": 0.2}
    assert dict(describe.recipe_facts(steps, None, None, None))["Steps"] == "8 (1 denoising)"
    assert dict(describe.recipe_facts({**steps, "exact_steps": True}, None, None, None))["Steps"] == (
        "8 (all denoising, exact steps)")
    assert describe.date_text("2026-03-01T07:05:00+11:00") == "Sun 1 Mar 2026, 07:05"
    # The style reference by its file's name (not where it lives), and how it was read.
    adapter = {"model": "h94/IP-Adapter", "scale": 0.6, "reference": "/home/jane/looks/film.jpg"}
    facts = dict(describe.recipe_facts({"ip_adapter": adapter}, None, None, None))
    assert facts["Style reference"] == "film.jpg" and facts["Reference scale"] == "0.6"
    native = {"model": "native", "scale": 1.0, "reference": ["/a/one.jpg", "/b/two.dng"]}
    facts = dict(describe.recipe_facts({"ip_adapter": native}, None, None, None))
    assert facts["Style reference"] == "one.jpg, two.dng" and facts["Reference read by"] == "the model itself"
    assert "Reference scale" not in facts
    assert "Style reference" not in dict(describe.recipe_facts({"ip_adapter": None}, None, None, None))


def test_every_parameter_names_files_and_folders_without_their_path():
    params = {"model_config": "/home/jane/models/FLUX.1-dev", "prompt": "/imagine a photo",
              "ip_adapter": {"reference": ["/home/jane/looks/a.jpg", "b.jpg"], "model": "h94/IP-Adapter"}}
    assert describe.all_params(params) == [
        ("ip_adapter.model", "h94/IP-Adapter"), ("ip_adapter.reference", "a.jpg, b.jpg"),
        ("model_config", "FLUX.1-dev"), ("prompt", "/imagine a photo")]


def test_every_parameter_reads_as_name_and_value_lists_of_tables_numbered():
    params = {"strength": 0.2, "loras": [{"path": "film.safetensors", "weight": 0.8}],
              "controlnet": [{"model": "depth", "scale": 1.0}, {"model": "canny", "scale": 0.5}],
              "embeddings": [], "output": {"quality": 95}, "prompt": ""}
    assert describe.all_params(params) == [
        ("controlnet.1.model", "depth"), ("controlnet.1.scale", "1"),
        ("controlnet.2.model", "canny"), ("controlnet.2.scale", "0.5"),
        ("loras.1.path", "film.safetensors"), ("loras.1.weight", "0.8"),
        ("output.quality", "95"), ("strength", "0.2")]


# --------------------------------------------------------------------------- the browser


class Chromium:
    """Headless Chromium over the DevTools protocol on a pipe (fd 3 in, fd 4 out, NUL-framed)."""

    def __init__(self, binary: str):
        self.profile = tempfile.mkdtemp(prefix="pb-chromium-")
        child_in, self._send = os.pipe()
        self._receive, child_out = os.pipe()

        def wire_pipes():
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-extensions", "--mute-audio", "--hide-scrollbars",
             f"--user-data-dir={self.profile}", "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(3, 4), preexec_fn=wire_pipes)
        os.close(child_in)
        os.close(child_out)
        self._ids = 0
        self._replies: dict[int, dict] = {}
        self.events: list[dict] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._receive, 1 << 16):
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                with self._cond:
                    if "id" in message:
                        self._replies[message["id"]] = message
                    else:
                        self.events.append(message)
                    self._cond.notify_all()
        os.close(self._receive)

    def call(self, method: str, session: str | None = None, **params):
        with self._cond:
            self._ids += 1
            mid = self._ids
        message = {"id": mid, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._send, json.dumps(message).encode() + b"\0")
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self._replies, timeout=30):
                raise TimeoutError(f"Chromium did not answer {method}")
            reply = self._replies.pop(mid)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def page(self, method: str, **params):
        return self.call(method, session=self.session, **params)

    def wait_for_event(self, method: str) -> dict:
        """The first ``method`` event not waited for yet."""
        with self._cond:
            found = self._cond.wait_for(
                lambda: any(e.get("method") == method for e in self.events), timeout=30)
            assert found, f"no {method} event"
            event = next(e for e in self.events if e.get("method") == method)
            self.events.remove(event)
        return event

    def js(self, expression: str):
        result = self.page("Runtime.evaluate", expression=expression, awaitPromise=True,
                           returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def images_loaded(self) -> None:
        self.js("Promise.all([...document.images].filter(i => i.src).map(i => i.complete ? 0 : "
                "new Promise(r => { i.onload = i.onerror = r; })))")

    def mouse(self, kind: str, x: float, y: float, buttons: int = 0) -> None:
        self.page("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                  buttons=buttons, clickCount=1 if kind != "mouseMoved" else 0)

    def key(self, key: str, code: str, key_code: int) -> None:
        for kind in ("keyDown", "keyUp"):
            self.page("Input.dispatchKeyEvent", type=kind, key=key, code=code,
                      windowsVirtualKeyCode=key_code)

    def screenshot(self, clip: dict | None = None) -> bytes:
        params = {"format": "png"}
        if clip:
            params["clip"] = {**clip, "scale": 1}
        return base64.b64decode(self.page("Page.captureScreenshot", **params)["data"])

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads, as one line each."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(f"console.{params['type']}: {params.get('args')}")
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
            elif method == "Network.loadingFailed":
                found.append(f"failed load: {params.get('errorText')}")
        return found

    def requested_urls(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events
                if e.get("method") == "Network.requestWillBeSent"]

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._send)
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture()
def browser():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (bash install/install.sh --dev installs it)")
    chromium = Chromium(CHROMIUM)
    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            chromium.page(f"{domain}.enable")
        chromium.page("Emulation.setDeviceMetricsOverride", width=1400, height=900,
                      deviceScaleFactor=1, mobile=False)
        yield chromium
    finally:
        chromium.close()


def _warmth(png: bytes) -> float:
    px = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=float)
    return float((px[..., 0] - px[..., 2]).mean())


def test_the_gallery_in_chromium(studio, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    browser.page("Page.navigate", url=(studio.gallery / "index.html").as_uri())
    browser.wait_for_event("Page.loadEventFired")
    browser.images_loaded()
    (ARTIFACTS / "gallery-grid.png").write_bytes(browser.screenshot())
    assert browser.js("document.title") == EVIL_TITLE
    assert browser.js("document.querySelector('h1').textContent") == EVIL_TITLE
    assert browser.js("document.querySelectorAll('.tile img').length") == 3
    assert browser.js("[...document.querySelectorAll('.tile img')].every(i => i.naturalWidth > 0)")

    # Open the photo with the malicious Make and Artist by clicking its tile.
    box = browser.js("(() => { const r = document.querySelector('.tile').getBoundingClientRect();"
                     " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
    browser.mouse("mousePressed", *box, buttons=1)
    browser.mouse("mouseReleased", *box)
    assert browser.js("!document.getElementById('viewer').hidden")
    browser.images_loaded()
    facts = browser.js("document.getElementById('facts').textContent")
    assert EVIL_ARTIST in facts and EVIL_MAKE.split(">")[0] in facts
    assert browser.js("location.hash") == "#photo-1"

    # Drag the before/after line from the middle to a fifth of the width.
    rect = browser.js("(() => { const r = document.getElementById('compare').getBoundingClientRect();"
                      " return {x: r.x, y: r.y, width: r.width, height: r.height}; })()")
    strip = {"x": rect["x"] + rect["width"] * 0.30, "y": rect["y"] + 40, "width": 20,
             "height": rect["height"] - 80}
    warmth_as_before = _warmth(browser.screenshot(strip))  # left of the line: the original
    assert browser.js("document.getElementById('divider').getAttribute('aria-valuenow')") == "50"
    y = rect["y"] + rect["height"] / 2
    browser.mouse("mousePressed", rect["x"] + rect["width"] * 0.5, y, buttons=1)
    for step in range(1, 11):
        browser.mouse("mouseMoved", rect["x"] + rect["width"] * (0.5 - 0.03 * step), y, buttons=1)
    browser.mouse("mouseReleased", rect["x"] + rect["width"] * 0.2, y)
    split = float(browser.js("document.getElementById('divider').getAttribute('aria-valuenow')"))
    assert abs(split - 20) <= 1
    assert browser.js("getComputedStyle(document.getElementById('compare'))"
                      ".getPropertyValue('--split').trim()").startswith("20")
    # The same strip now shows the output: the line really moved over the pictures.
    assert _warmth(browser.screenshot(strip)) > warmth_as_before + 15
    browser.key("ArrowRight", "ArrowRight", 39)  # the focused line moves by keyboard too
    assert browser.js("document.getElementById('divider').getAttribute('aria-valuenow')") == "22"
    (ARTIFACTS / "gallery-viewer.png").write_bytes(browser.screenshot())

    # Nothing from the photos or the title ran, and nothing was injected into the page.
    assert browser.js("typeof window.pwned") == "undefined"
    assert browser.js("document.scripts.length") == 2
    assert browser.js("document.querySelectorAll('img[src=\"x\"], [onerror]').length") == 0
    browser.key("Escape", "Escape", 27)
    assert browser.js("document.getElementById('viewer').hidden")

    # A phone: a deep link opens the viewer, and the comparison keeps a usable size.
    browser.page("Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=1,
                 mobile=True)
    browser.page("Page.navigate", url="about:blank")  # a new load, not a same-page #hash jump
    browser.wait_for_event("Page.loadEventFired")
    browser.page("Page.navigate", url=(studio.gallery / "index.html").as_uri() + "#photo-2")
    browser.wait_for_event("Page.loadEventFired")
    browser.images_loaded()
    assert browser.js("document.getElementById('viewer-title').textContent") == "IMG_0002.JPG"
    size = browser.js("(() => { const r = document.getElementById('compare').getBoundingClientRect();"
                      " return [r.width, r.height]; })()")
    assert size[1] > 300 and abs(size[0] / size[1] - 600 / 900) < 0.02, size
    (ARTIFACTS / "gallery-viewer-phone.png").write_bytes(browser.screenshot())

    time.sleep(0.2)  # let late console messages arrive
    assert browser.problems() == []
    urls = browser.requested_urls()
    assert urls and all(u.startswith("file://") for u in urls), urls


def test_a_client_marks_favourites_and_copies_their_names_for_the_photographer(studio, browser):
    index = (studio.gallery / "index.html").as_uri()
    browser.page("Page.navigate", url=index)
    browser.wait_for_event("Page.loadEventFired")
    browser.images_loaded()
    assert browser.js("document.getElementById('favourites').hidden")  # none yet: no bar
    browser.js("document.querySelector('.tile').click()")
    browser.key("f", "KeyF", 70)  # the first photo, by keyboard
    browser.js("document.getElementById('next').click()")
    browser.js("document.getElementById('favourite').click()")  # the second, by its button
    assert browser.js("document.getElementById('favourite').getAttribute('aria-pressed')") == "true"
    browser.key("Escape", "Escape", 27)
    assert browser.js("document.getElementById('favourites-count').textContent") == "2 favourites"
    assert browser.js("document.querySelectorAll('.tile.is-favourite').length") == 2
    browser.js("document.getElementById('favourites-copy').click()")
    names = browser.js("document.getElementById('favourites-list').value")
    assert names == "DSCF0001.JPG\nIMG_0002.JPG"  # the order taken, one a line
    browser.js("document.getElementById('favourites-only').click()")
    assert browser.js("[...document.querySelectorAll('.tile')].filter(t => t.offsetWidth > 0).length") == 2
    (ARTIFACTS / "gallery-favourites.png").write_bytes(browser.screenshot())

    # The list is what `photobatch export files` takes: those photos, in any folder.
    out = studio.root / "client-picks"
    result = studio.cli("export", "files", "--out", out, *names.split("\n"))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.jpg")) == ["DSCF0001_golden-hour.jpg", "IMG_0002_golden-hour.jpg"]

    # Kept in this browser: the gallery opened again has them; Clear forgets them.
    browser.page("Page.navigate", url="about:blank")
    browser.wait_for_event("Page.loadEventFired")
    browser.page("Page.navigate", url=index)
    browser.wait_for_event("Page.loadEventFired")
    assert browser.js("document.querySelectorAll('.tile.is-favourite').length") == 2
    browser.js("document.getElementById('favourites-clear').click()")
    assert browser.js("document.getElementById('favourites').hidden")
    assert browser.js("document.querySelectorAll('.tile.is-favourite').length") == 0
    time.sleep(0.2)
    assert browser.problems() == []


def test_the_first_screenful_of_tiles_loads_at_once_the_rest_lazily():
    import re

    from photobatch.plugins.gallery.images import Picture
    from photobatch.plugins.gallery.page import EAGER_TILES, Entry, render_page

    pic = Picture("thumbs/a.jpg", 300, 200)
    entries = [Entry(title=f"P{i}", recipe="r", thumb=pic, after=pic, before=None, facts=[],
                     recipe_facts=[], params=[]) for i in range(EAGER_TILES + 5)]
    page = render_page(title="t", subtitle="s", entries=entries, zip_link=None, generated="now",
                       assets={"gallery.css": "a.css", "gallery.js": "a.js"})
    loading = re.findall(r'<img [^>]*loading="(\w+)"', page)
    assert loading == ["eager"] * EAGER_TILES + ["lazy"] * 5


def test_a_proofing_gallery_can_carry_the_studio_logo_where_it_is_asked(studio, tmp_path):
    from PIL import ImageDraw

    logo = Image.new("RGBA", (120, 60), (0, 0, 0, 0))
    ImageDraw.Draw(logo).rectangle((0, 0, 59, 59), fill=(20, 200, 20, 255))
    logo.save(tmp_path / "logo.png")
    both = studio.cli("export", "gallery", "--out", tmp_path / "x", "--camera", "R6m2",
                      "--watermark", "© Jane Doe", "--watermark-image", tmp_path / "logo.png")
    assert both.exit_code == 1 and "a watermark is text or a graphic (choose one)" in both.output
    studio.export(tmp_path / "open", "--camera", "R6m2")
    studio.export(tmp_path / "proof", "--camera", "R6m2", "--watermark-image", tmp_path / "logo.png",
                  "--watermark-position", "top-left")
    [open_photo] = _data((tmp_path / "open" / "index.html").read_text("utf-8"))["photos"]
    [photo] = _data((tmp_path / "proof" / "index.html").read_text("utf-8"))["photos"]
    assert photo["download"] is None
    with Image.open(tmp_path / "open" / open_photo["after"]["src"]) as a, \
            Image.open(tmp_path / "proof" / photo["after"]["src"]) as b:
        diff = np.abs(np.asarray(b.convert("RGB")).astype(int) - np.asarray(a.convert("RGB"))).max(axis=2)
        height, width = diff.shape
        assert diff[: int(height * 0.3), : int(width * 0.3)].max() > 100  # the green logo
        assert diff[int(height * 0.4):].mean() < 1.5 and diff[:, int(width * 0.5):].mean() < 1.5
    bad = tmp_path / "bad.png"
    bad.write_text("not a picture")
    refused = studio.cli("export", "gallery", "--out", tmp_path / "y", "--camera", "R6m2",
                         "--watermark-image", bad)
    assert refused.exit_code == 1 and f"the watermark image {bad} cannot be read" in refused.output
