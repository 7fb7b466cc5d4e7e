"""Selecting by the photographer's culling: star ratings and colour labels from XMP sidecars
(Lightroom's IMG_0001.xmp, darktable's IMG_0001.JPG.xmp) or the photo's own XMP, read again
when a sidecar changes; the real CLI, catalog and stand-in model."""

from __future__ import annotations

import json
import os
import re
import sqlite3

from click.testing import CliRunner
from PIL import Image

from photobatch.catalog.culling import Culling, read_sidecar, sidecars_for
from photobatch.daemon.cli import main
from photobatch.daemon.samples import write_sample_photo

RECIPE = '''name = "tone"
prompt = "warm light"
strength = 0.3
steps = 4
sampler = "Euler"
'''


def lightroom_sidecar(path, rating=None, label=None, keywords=()):
    """An XMP sidecar as Lightroom Classic writes it for a RAW (attributes on rdf:Description,
    keywords in a dc:subject bag)."""
    attrs = "".join([f' xmp:Rating="{rating}"' if rating is not None else "",
                     f' xmp:Label="{label}"' if label else ""])
    subject = ("<dc:subject><rdf:Bag>" + "".join(f"<rdf:li>{k}</rdf:li>" for k in keywords)
               + "</rdf:Bag></dc:subject>") if keywords else ""
    path.write_text(
        '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Adobe XMP Core 7.0-c000">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/"'
        ' xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/"'
        f' crs:Exposure2012="+0.35"{attrs}>{subject}</rdf:Description>\n'
        ' </rdf:RDF>\n</x:xmpmeta>\n')
    return path


def darktable_sidecar(path, rating, colorlabels):
    """An XMP sidecar as darktable writes it (labels as numbers in a sequence)."""
    items = "".join(f"<rdf:li>{n}</rdf:li>" for n in colorlabels)
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<x:xmpmeta xmlns:x="adobe:ns:meta/" '
        'x:xmptk="XMP Core 4.4.0-Exiv2">\n <rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n  <rdf:Description rdf:about="" '
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:darktable="http://darktable.sf.net/" '
        f'xmp:Rating="{rating}" darktable:xmp_version="5">\n'
        f'   <darktable:colorlabels><rdf:Seq>{items}</rdf:Seq></darktable:colorlabels>\n'
        '  </rdf:Description>\n </rdf:RDF>\n</x:xmpmeta>\n')
    return path


def test_sidecars_of_lightroom_and_darktable_are_read(tmp_path):
    photo = tmp_path / "DSC_0001.NEF"
    photo.write_bytes(b"raw")
    assert sidecars_for(photo) == []
    lr = lightroom_sidecar(tmp_path / "DSC_0001.xmp", rating=4, label="Red",
                           keywords=("Client Select", "Paris"))
    dt = darktable_sidecar(tmp_path / "DSC_0001.NEF.xmp", rating=-1, colorlabels=[2, 4])
    assert sidecars_for(photo) == [lr, dt]
    assert read_sidecar(lr) == Culling(4, ("Red",), ("Client Select", "Paris"))
    assert read_sidecar(lr).matches(None, [], ["client select"])
    assert not read_sidecar(lr).matches(None, [], ["London"])
    assert read_sidecar(dt) == Culling(-1, ("Green", "Purple"))
    assert read_sidecar(lightroom_sidecar(tmp_path / "x.xmp", label="Second")) == Culling(None, ("Second",))
    own = read_sidecar(lightroom_sidecar(tmp_path / "y.xmp", label="RAW-edit"))
    assert own.as_xmp() == {"Xmp.xmp.Label": "RAW-edit"} and own.matches(None, ["raw-EDIT"])
    broken = tmp_path / "broken.xmp"
    broken.write_text("<x:xmpmeta")
    assert read_sidecar(broken) == Culling()  # a warning in the log, not a failure
    assert Culling(4, ("Red",)).matches(3, ["RED"]) and not Culling(-1, ()).matches(0, [])


def _cli(tmp_path, *args):
    recipes = tmp_path / "recipes"
    recipes.mkdir(exist_ok=True)
    (recipes / "tone.toml").write_text(RECIPE)
    return CliRunner().invoke(main, ["--catalog", str(tmp_path / "c.db"), "--recipes", str(recipes),
                                     *map(str, args)], catch_exceptions=False)


def _names(tmp_path, *filters):
    listed = _cli(tmp_path, "catalog", "ls", "--json", *filters)
    assert listed.exit_code == 0, listed.output
    return sorted({row["path"].rsplit("/", 1)[1] for row in json.loads(listed.output)})


def test_selections_follow_the_ratings_and_labels_as_they_change(tmp_path, standin_model, exiftool):
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    write_sample_photo(shoot / "A.JPG", size=(96, 64), seed=1, rating=None)
    write_sample_photo(shoot / "B.JPG", size=(96, 64), seed=2, rating=3)  # rated in camera
    write_sample_photo(shoot / "C.JPG", size=(96, 64), seed=3, rating=None, label="Blue")
    lightroom_sidecar(shoot / "A.xmp", rating=5, label="Red", keywords=("client-select",))
    darktable_sidecar(shoot / "C.JPG.xmp", rating=-1, colorlabels=[2])
    ran = _cli(tmp_path, "run", shoot, "--recipe", "tone", "--model", standin_model,
               "--out", tmp_path / "out")
    assert "3 done" in ran.output, ran.output
    # The outputs carry the photographer's word, as a Lightroom export does.
    a_out = exiftool.json(tmp_path / "out" / "A_tone.jpg")
    assert (a_out["Rating"], a_out["Label"], a_out["Subject"]) == (5, "Red", "client-select")
    c_out = exiftool.json(tmp_path / "out" / "C_tone.jpg")
    assert (c_out["Rating"], c_out["Label"]) == (-1, "Green")  # darktable's numbers as a name
    assert exiftool.json(tmp_path / "out" / "B_tone.jpg")["Rating"] == 3  # its own, copied
    assert exiftool.warnings(tmp_path / "out" / "A_tone.jpg") == []
    assert _names(tmp_path, "--rating", "4") == ["A.JPG"]
    assert _names(tmp_path, "--rating", "3") == ["A.JPG", "B.JPG"]
    assert _names(tmp_path, "--rating", "0") == ["A.JPG", "B.JPG"]  # C is rejected
    assert _names(tmp_path, "--label", "green") == ["C.JPG"]  # the sidecar over its own XMP
    assert _names(tmp_path, "--label", "Red", "--label", "green") == ["A.JPG", "C.JPG"]
    assert _names(tmp_path, "--label", "green", "--rating", "1") == []
    assert _names(tmp_path, "--keyword", "Client-Select") == ["A.JPG"]  # from A's sidecar
    # B's own IPTC/XMP keywords; C's sidecar (darktable's word on it) has none.
    assert _names(tmp_path, "--keyword", "photobatch") == ["B.JPG"]
    table = _cli(tmp_path, "catalog", "ls").output
    assert "★★★★★ Red" in table and "rejected Green" in table

    # Culled later in Lightroom: B gets five stars; C's darktable sidecar goes, its own XMP counts.
    later = lightroom_sidecar(shoot / "B.xmp", rating=5)
    os.utime(later, ns=(later.stat().st_mtime_ns + 10**9,) * 2)
    (shoot / "C.JPG.xmp").unlink()
    assert _names(tmp_path, "--rating", "5") == ["A.JPG", "B.JPG"]
    assert _names(tmp_path, "--label", "blue") == ["C.JPG"]
    assert _names(tmp_path, "--keyword", "photobatch") == ["C.JPG"]  # B's sidecar has none now
    stored = dict(sqlite3.connect(tmp_path / "c.db").execute(
        "SELECT substr(path, -5), rating FROM files").fetchall())
    assert stored == {"A.JPG": 5, "B.JPG": 5, "C.JPG": None}

    gallery = _cli(tmp_path, "export", "gallery", "--rating", "5", "--out", tmp_path / "picks")
    assert gallery.exit_code == 0, gallery.output
    html = (tmp_path / "picks" / "index.html").read_text()
    data = json.loads(re.search(r'<script type="application/json" id="gallery-data">(.*?)</script>',
                                html, re.S).group(1))
    facts = {photo["title"]: dict(photo["facts"]) for photo in data["photos"]}
    assert sorted(facts) == ["A.JPG", "B.JPG"]  # the five-star picks only
    assert facts["A.JPG"]["Rating"] == "★★★★★ · Red" and facts["B.JPG"]["Rating"] == "★★★★★"
    assert facts["A.JPG"]["Keywords"] == "client-select"
    assert "Keywords" not in facts["B.JPG"]  # its sidecar has the word now, and lists none

    # The shoot's disk unmounted: the catalog still knows what the sidecars said.
    shoot.rename(tmp_path / "unplugged")
    assert _names(tmp_path, "--rating", "5") == ["A.JPG", "B.JPG"]
    (tmp_path / "unplugged").rename(shoot)

    sidecar = (shoot / "A.xmp").read_bytes()
    rerun = _cli(tmp_path, "rerun", "--rating", "5", "--force", "--model", standin_model)
    assert "queued 2 run(s)" in rerun.output, rerun.output
    assert (shoot / "A.xmp").read_bytes() == sidecar  # the photographer's files are only read
    # While the daemon has them queued, the outputs made before are still exported.
    again = _cli(tmp_path, "export", "gallery", "--rating", "5", "--out", tmp_path / "picks2")
    assert again.exit_code == 0 and "gallery of 2 photo(s)" in again.output, again.output
    assert sorted(p.name for p in shoot.iterdir()) == ["A.JPG", "A.xmp", "B.JPG", "B.xmp", "C.JPG"]


def test_only_policies_that_keep_descriptions_carry_the_sidecar():
    from photobatch.plugins.metadata.policies import xmp_changes

    word = Culling(4, ("Green",), ("client-select",)).as_xmp()
    assert word == {"Xmp.xmp.Rating": "4", "Xmp.xmp.Label": "Green",
                    "Xmp.dc.subject": ["client-select"]}
    for policy, carried in (("all", True), ("no-location", True), ("copyright-only", False),
                            ("none", False)):
        _, changes = xmp_changes({}, policy, 10, 10, {"Recipe": "r"}, word)
        assert ("Xmp.xmp.Rating" in changes) is carried, policy


def test_inspect_shows_what_the_sidecar_says(tmp_path):
    photo = write_sample_photo(tmp_path / "IMG_0009.JPG", size=(64, 48), rating=2, label="Blue")
    lightroom_sidecar(tmp_path / "IMG_0009.xmp", rating=4, label="Green", keywords=("client-select",))
    shown = CliRunner().invoke(main, ["inspect", str(photo)])
    assert shown.exit_code == 0, shown.output
    assert "  rating        2\n" in shown.output and "  label         Blue\n" in shown.output  # its own
    assert "  sidecar       IMG_0009.xmp: ★★★★☆ · Green · client-select\n" in shown.output
    record = json.loads(CliRunner().invoke(main, ["inspect", "--json", str(photo)]).output)
    assert record["sidecar"] == {"file": "IMG_0009.xmp", "rating": 4, "labels": ["Green"],
                                 "keywords": ["client-select"]}


def test_sync_metadata_writes_later_culling_into_the_outputs(tmp_path, standin_model, exiftool):
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    write_sample_photo(shoot / "D.JPG", size=(96, 64), seed=4, rating=None)
    write_sample_photo(shoot / "E.JPG", size=(96, 64), seed=5, rating=None)
    lightroom_sidecar(shoot / "D.xmp", rating=2, label="Red")
    assert "2 done" in _cli(tmp_path, "run", shoot, "--recipe", "tone", "--model", standin_model,
                            "--out", tmp_path / "out").output
    output = tmp_path / "out" / "D_tone.jpg"
    pixels = Image.open(output).tobytes()
    assert exiftool.json(output)["Rating"] == 2

    # Culled after processing: five stars, no label any more, a keyword.
    later = lightroom_sidecar(shoot / "D.xmp", rating=5, keywords=("client-select",))
    os.utime(later, ns=(later.stat().st_mtime_ns + 10**9,) * 2)
    synced = _cli(tmp_path, "catalog", "sync-metadata")
    assert synced.exit_code == 0, synced.output
    assert "updated  D_tone.jpg" in synced.output
    assert "1 output(s) updated, 1 already current, 0 left alone" in synced.output
    now = exiftool.json(output)
    assert (now["Rating"], now.get("Label"), now["Subject"]) == (5, None, "client-select")
    assert Image.open(output).tobytes() == pixels  # only the metadata changed
    assert exiftool.json(output)["Model"] == exiftool.json(shoot / "D.JPG")["Model"]  # EXIF kept
    assert exiftool.warnings(output) == []
    verified = _cli(tmp_path, "catalog", "verify")
    assert verified.exit_code == 0 and "all as recorded" in verified.output  # sha recorded anew
    again = _cli(tmp_path, "catalog", "sync-metadata")
    assert "0 output(s) updated, 2 already current" in again.output


def test_sync_metadata_leaves_outputs_whose_policy_keeps_no_ratings(tmp_path, standin_model):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "quiet.toml").write_text(
        RECIPE.replace('name = "tone"', 'name = "quiet"') + '[output]\nmetadata = "copyright-only"\n')
    photo = write_sample_photo(tmp_path / "F.JPG", size=(96, 64), seed=6, rating=None)
    lightroom_sidecar(tmp_path / "F.xmp", rating=4)
    assert "1 done" in _cli(tmp_path, "run", photo, "--recipe", "quiet", "--model", standin_model,
                            "--out", tmp_path / "out").output
    synced = _cli(tmp_path, "catalog", "sync-metadata")
    assert "0 output(s) updated, 0 already current, 1 left alone" in synced.output
