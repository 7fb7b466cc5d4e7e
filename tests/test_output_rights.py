"""The config's ``[copyright]`` preset: the photographer's creator, notice, usage terms and
licensing page in every output's EXIF, XMP and IPTC, as a Lightroom metadata preset writes them."""

from __future__ import annotations

import json

import pyexiv2
import pytest
from click.testing import CliRunner

from photobatch.daemon.cli import main
from photobatch.daemon.config import ConfigError, parse_config
from photobatch.daemon.samples import write_sample_photo
from photobatch.plugins.metadata.rights import Rights
from photobatch.recipes.schema import recipe_from_dict

PRESET = Rights(creator="Ana Lima", notice="© {year} Ana Lima, all rights reserved",
                usage_terms="No use without a licence: ana@example.com",
                url="https://analima.example/licensing")
TAGS = ("-IFD0:Artist", "-IFD0:Copyright", "-XMP-dc:Creator", "-XMP-dc:Rights",
        "-XMP-xmpRights:Marked", "-XMP-xmpRights:UsageTerms", "-XMP-xmpRights:WebStatement",
        "-IPTC:By-line", "-IPTC:CopyrightNotice")


def _recipe(**output):
    return recipe_from_dict({"name": "plain", "runner": "identity", "output": output})


def _rights_of(exiftool, path) -> dict:
    read = exiftool.json(path, "-G1", *TAGS)
    return {k: v for k, v in read.items() if k != "SourceFile"}


def test_a_camera_that_says_nothing_gets_the_preset_everywhere_readers_look(
        tmp_path, identity_session, exiftool):
    identity_session.app.rights = PRESET
    source = write_sample_photo(tmp_path / "IMG_0001.JPG", size=(120, 80), artist="",
                                copyright="", date_taken="2025:09:02 08:00:00")
    outcome = identity_session.process(source, _recipe())
    assert outcome.status == "done", outcome.error
    notice = "© 2025 Ana Lima, all rights reserved"  # the year the photo was taken
    assert _rights_of(exiftool, outcome.output) == {
        "IFD0:Artist": "Ana Lima", "IFD0:Copyright": notice,
        "XMP-dc:Creator": "Ana Lima", "XMP-dc:Rights": notice, "XMP-xmpRights:Marked": True,
        "XMP-xmpRights:UsageTerms": PRESET.usage_terms,
        "XMP-xmpRights:WebStatement": PRESET.url,
        # In the character set the record declares: a reader shows the © as it is.
        "IPTC:By-line": "Ana Lima", "IPTC:CopyrightNotice": notice}
    assert exiftool.warnings(outcome.output) == []
    assert b"Ana Lima" not in source.read_bytes()  # the original is never written


def test_a_second_shooter_s_own_credit_is_kept_unless_the_preset_replaces_it(
        tmp_path, identity_session, exiftool):
    source = write_sample_photo(tmp_path / "IMG_0002.JPG", size=(120, 80), artist="Bob Second",
                                copyright="")
    identity_session.app.rights = PRESET
    kept = _rights_of(exiftool, identity_session.process(source, _recipe()).output)
    assert kept["IFD0:Artist"] == kept["XMP-dc:Creator"] == kept["IPTC:By-line"] == "Bob Second"
    assert kept["IFD0:Copyright"] == "© 2026 Ana Lima, all rights reserved"  # none of his own
    identity_session.app.rights = Rights(creator="Studio North", replace=True)
    replaced = _rights_of(exiftool, identity_session.process(
        source, _recipe(name="{stem}_studio")).output)
    assert replaced["IFD0:Artist"] == replaced["XMP-dc:Creator"] == "Studio North"
    assert replaced["IPTC:By-line"] == "Studio North"
    # Fields the preset leaves empty are the camera's, as they were.
    assert "IFD0:Copyright" not in replaced or replaced["IFD0:Copyright"] == ""


@pytest.mark.parametrize("policy, written", [("copyright-only", True), ("none", False)])
def test_the_metadata_policy_decides_whether_the_preset_goes_out(
        tmp_path, identity_session, read_meta, policy, written):
    identity_session.app.rights = PRESET
    source = write_sample_photo(tmp_path / "IMG_0003.JPG", size=(120, 80), artist="", copyright="")
    outcome = identity_session.process(source, _recipe(metadata=policy))
    exif, iptc, xmp = read_meta(outcome.output)
    assert (exif.get("Exif.Image.Artist") == "Ana Lima") is written
    assert ("Xmp.xmpRights.UsageTerms" in xmp) is written
    assert "Xmp.photobatch.Recipe" in xmp  # our record goes out under every policy


def test_into_an_iptc_record_in_another_character_set_only_plain_text_goes(tmp_path, identity_session,
                                                                           read_meta):
    source = write_sample_photo(tmp_path / "IMG_0004.JPG", size=(120, 80), artist="", copyright="")
    image = pyexiv2.Image(str(source))
    image.modify_iptc({"Iptc.Envelope.CharacterSet": None})  # an older tool's Latin-1 record
    image.close()
    identity_session.app.rights = PRESET
    outcome = identity_session.process(source, _recipe())
    exif, iptc, xmp = read_meta(outcome.output)
    assert "Iptc.Envelope.CharacterSet" not in iptc  # the record's own set is not changed
    assert iptc["Iptc.Application2.Byline"] == ["Ana Lima"]
    assert not iptc.get("Iptc.Application2.Copyright")  # "©" would read as "Â©" there
    assert exif["Exif.Image.Copyright"] == "© 2026 Ana Lima, all rights reserved"


def test_the_watermark_takes_the_artist_from_the_preset_when_the_camera_has_none(
        tmp_path, identity_session):
    source = write_sample_photo(tmp_path / "IMG_0005.JPG", size=(120, 80), artist="")
    marked = _recipe(watermark="© {artist}")
    failed = identity_session.process(source, marked)
    assert failed.status == "failed" and "takes {artist} from the photo" in failed.error
    identity_session.app.rights = PRESET
    assert identity_session.process(source, marked).status == "done"


def test_the_config_table_is_checked_key_by_key():
    config = parse_config({"copyright": {"creator": "Ana Lima", "replace": True}})
    assert config.rights == Rights(creator="Ana Lima", replace=True)
    assert parse_config({}).rights is None and parse_config({"copyright": {}}).rights is None
    with pytest.raises(ConfigError, match=r"unknown key copyright.notise; did you mean 'notice'"):
        parse_config({"copyright": {"notise": "x"}})
    with pytest.raises(ConfigError, match=r"unknown key creator; it belongs in \[copyright\]"):
        parse_config({"creator": "Ana Lima"})
    with pytest.raises(ConfigError, match=r"copyright.notice must be one line"):
        parse_config({"copyright": {"notice": "a\nb"}})


def test_sync_metadata_brings_a_new_preset_to_outputs_made_before(tmp_path, identity_session,
                                                                  read_meta):
    photos = [write_sample_photo(tmp_path / "in" / f"IMG_00{n}.JPG", size=(120, 80), seed=n,
                                 artist="" if n == 1 else "Bob Second", copyright="")
              for n in (1, 2)]
    outputs = [identity_session.process(p, _recipe()).output for p in photos]
    pixels_before = [o.read_bytes()[-2000:] for o in outputs]
    config = tmp_path / "config.toml"
    config.write_text('[copyright]\ncreator = "Ana Lima"\nnotice = "© {year} Ana Lima"\n',
                      encoding="utf-8")
    photos[1].rename(tmp_path / "IMG_002-archived.JPG")  # an original archived elsewhere

    def sync():
        return CliRunner().invoke(main, ["--catalog", str(tmp_path / "catalog.db"), "--config",
                                         str(config), "catalog", "sync-metadata"])

    first = sync()
    assert first.exit_code == 0, first.output
    assert "2 output(s) updated" in first.output
    creators = [read_meta(o)[0]["Exif.Image.Artist"] for o in outputs]
    # The archived original's own credit is known from the catalog: it is kept.
    assert creators == ["Ana Lima", "Bob Second"]
    assert [read_meta(o)[2]["Xmp.dc.rights"] for o in outputs] == [
        {'lang="x-default"': "© 2026 Ana Lima"}] * 2
    assert [o.read_bytes()[-2000:] for o in outputs] == pixels_before  # the pixels stay
    again = sync()
    assert again.exit_code == 0 and "0 output(s) updated, 2 already current" in again.output
    verify = CliRunner().invoke(main, ["--catalog", str(tmp_path / "catalog.db"), "catalog",
                                       "verify", "--json"])
    findings = json.loads(verify.output)
    # Only the archived original is missed; the rewritten outputs are what the catalog says.
    assert [(f["kind"], f["path"]) for f in findings] == [("original missing", str(photos[1]))]


def test_inspect_shows_who_owns_a_photo_and_how_big_it_prints(tmp_path, identity_session):
    identity_session.app.rights = PRESET
    source = write_sample_photo(tmp_path / "IMG_0006.JPG", size=(600, 400), artist="", copyright="")
    output = identity_session.process(source, _recipe(ppi=300)).output
    text = CliRunner().invoke(main, ["inspect", str(output)]).output
    for line in ("resolution    300 ppi: prints 5.1 x 3.4 cm (2.0 x 1.3 in)",
                 "creator       Ana Lima", "copyright     © 2026 Ana Lima, all rights reserved",
                 f"usage terms   {PRESET.usage_terms}", f"licensing     {PRESET.url}"):
        assert "  " + line in text.splitlines(), (line, text)
    data = json.loads(CliRunner().invoke(main, ["inspect", "--json", str(source)]).output)
    assert data["rights"] == {} and data["ppi"] == 72  # the camera's: no credit, 72 ppi


def test_a_second_shooter_s_watch_folder_has_its_own_credit_over_the_config_s(
        tmp_path, identity_session, read_meta):
    config = parse_config({
        "copyright": {"creator": "Ana Lima", "notice": "© {year} Studio North"},
        "watch": [{"path": str(tmp_path / "inbox"), "recipes": ["x"], "output": str(tmp_path / "o")},
                  {"path": str(tmp_path / "inbox" / "bob"), "recipes": ["x"],
                   "output": str(tmp_path / "o"), "copyright": {"creator": "Bob Second"}}]})
    assert config.watch[0].rights is None  # the config's own applies there
    assert config.watch[1].rights == Rights(creator="Bob Second", notice="© {year} Studio North")
    identity_session.app.rights, identity_session.app.folder_rights = config.rights, config.folder_rights()
    made = {}
    for where in ("inbox", "inbox/bob/day1"):
        photo = write_sample_photo(tmp_path / where / "IMG_0001.JPG", size=(96, 64), artist="",
                                   copyright="")
        output = identity_session.process(photo, _recipe(name=f"{where.replace('/', '_')}_{{stem}}")).output
        exif = read_meta(output)[0]
        made[where] = (exif["Exif.Image.Artist"], exif["Exif.Image.Copyright"])
    assert made == {"inbox": ("Ana Lima", "© 2026 Studio North"),
                    "inbox/bob/day1": ("Bob Second", "© 2026 Studio North")}
    with pytest.raises(ConfigError, match=r"unknown key watch\[0\].copyright.creater; did you mean 'creator'"):
        parse_config({"watch": [{"path": "/a", "recipes": ["x"], "output": "/b",
                                 "copyright": {"creater": "Bob"}}]})


def test_the_gallery_credits_the_photo_as_its_download_does(tmp_path, identity_session):
    import re

    source = write_sample_photo(tmp_path / "in" / "IMG_0007.JPG", size=(96, 64), artist="",
                                copyright="")
    identity_session.app.rights = PRESET
    assert identity_session.process(source, _recipe()).status == "done"
    config = tmp_path / "config.toml"
    config.write_text('[copyright]\ncreator = "Ana Lima"\nnotice = "© {year} Ana Lima"\n',
                      encoding="utf-8")
    result = CliRunner().invoke(main, ["--catalog", str(tmp_path / "catalog.db"), "--config",
                                       str(config), "export", "gallery", "--out", str(tmp_path / "g")])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "g" / "index.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r'id="gallery-data">(.*?)</script>', html, re.S).group(1))
    facts = dict(data["photos"][0]["facts"])
    assert (facts["Artist"], facts["Copyright"]) == ("Ana Lima", "© 2026 Ana Lima")


def test_rerun_and_export_build_the_app_with_the_config_s_device_precision_and_copyright(tmp_path):
    from photobatch.daemon.commands.common import Context
    from photobatch.daemon.commands.current import current_app

    config = parse_config({"defaults": {"device": "cpu", "precision": "fp32"},
                           "copyright": {"creator": "Ana Lima"}})
    app, _ = current_app(Context(catalog=tmp_path / "catalog.db", recipe_dirs=(), config=config))
    try:
        # `rerun --now` makes outputs as `run` does: on the config's device, in its precision.
        cache = app.runners.get("img2img").cache
        assert (cache._requested_device, cache._requested_precision) == ("cpu", "fp32")
        assert app.rights_for(tmp_path / "IMG_0001.JPG").creator == "Ana Lima"
    finally:
        app.close()
