"""The photographer's copyright in every output, as a Lightroom metadata preset puts it.

A config's ``[copyright]`` table names the creator, the copyright notice (``{year}``: the year
the photo was taken), the usage terms and a web page for licensing. Each goes where readers
look for it: EXIF (Artist, Copyright), XMP (dc:creator, dc:rights, xmpRights:UsageTerms,
xmpRights:WebStatement, and xmpRights:Marked "copyrighted" with a notice) and IPTC (By-line,
Copyright Notice), which WordPress and older DAMs still read.

By default a value fills only what the camera left empty: a second shooter whose camera says
who they are keeps the credit. ``replace = true`` writes the preset's values over the camera's.
Whether a photo has a value of its own is read from the original, so the outputs of a photo are
judged alike when they are written and when ``catalog sync-metadata`` brings them up to date
with a changed preset.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

# The tags each field is written to, and read from to tell whether a photo has its own.
_CREATOR_TAGS = ("Exif.Image.Artist", "Xmp.dc.creator", "Iptc.Application2.Byline")
_NOTICE_TAGS = ("Exif.Image.Copyright", "Xmp.dc.rights", "Iptc.Application2.Copyright")
_TERMS_TAGS = ("Xmp.xmpRights.UsageTerms",)
_URL_TAGS = ("Xmp.xmpRights.WebStatement",)
FIELD_TAGS = {"creator": _CREATOR_TAGS, "notice": _NOTICE_TAGS, "usage_terms": _TERMS_TAGS,
              "url": _URL_TAGS}
# Every tag this module may write (what sync-metadata compares).
RIGHTS_TAGS = (*_CREATOR_TAGS, *_NOTICE_TAGS, *_TERMS_TAGS, *_URL_TAGS, "Xmp.xmpRights.Marked",
               "Iptc.Envelope.CharacterSet")
# IPTC's marker for UTF-8 text (ESC % G).
_UTF8 = "\x1b%G"
_DEFAULT_LANG = 'lang="x-default"'


@dataclass(frozen=True)
class Rights:
    """The config's ``[copyright]`` preset."""

    creator: str = ""
    notice: str = ""
    usage_terms: str = ""
    url: str = ""
    replace: bool = False

    def __bool__(self) -> bool:
        return bool(self.creator or self.notice or self.usage_terms or self.url)

    def values(self, date_taken: str | None, now: datetime | None = None) -> dict[str, str]:
        """The preset's fields (those set) for a photo taken at ``date_taken`` (ISO 8601; its
        year fills ``{year}``, this year when the photo has no date)."""
        year = (date_taken or "")[:4] if (date_taken or "")[:4].isdigit() else str(
            (now or datetime.now()).year)
        fields = {"creator": self.creator, "notice": self.notice.replace("{year}", year),
                  "usage_terms": self.usage_terms, "url": self.url}
        return {name: value for name, value in fields.items() if value}


def rights_in(groups: dict[str, Any]) -> dict[str, str]:
    """The creator, notice, usage terms and url that metadata ``groups`` (EXIF, IPTC and XMP
    keys merged) give, each from the first of its tags that has it (those it has)."""
    found = {}
    for field, tags in FIELD_TAGS.items():
        text = next((_text(groups.get(tag)) for tag in tags if _text(groups.get(tag))), "")
        if text:
            found[field] = text
    return found


def has_own(groups: dict[str, Any], field: str) -> bool:
    """Whether the metadata ``groups`` (EXIF, IPTC and XMP keys merged) give ``field`` a value."""
    return any(_text(groups.get(tag)) for tag in FIELD_TAGS[field])


def rights_changes(values: dict[str, str], source: dict[str, Any], output_iptc: dict[str, Any],
                   replace: bool) -> tuple[dict, dict, dict]:
    """(EXIF, IPTC, XMP) values to set in an output for the preset ``values`` (from
    Rights.values), given the original's metadata ``source`` (its groups merged) and the IPTC
    already in the output. A field the original has is left alone unless ``replace``."""
    exif: dict[str, Any] = {}
    iptc: dict[str, Any] = {}
    xmp: dict[str, Any] = {}
    wanted = {name: value for name, value in values.items()
              if replace or not has_own(source, name)}
    if "creator" in wanted:
        exif["Exif.Image.Artist"] = wanted["creator"]
        xmp["Xmp.dc.creator"] = [wanted["creator"]]
        iptc["Iptc.Application2.Byline"] = [wanted["creator"]]
    if "notice" in wanted:
        exif["Exif.Image.Copyright"] = wanted["notice"]
        xmp["Xmp.dc.rights"] = {_DEFAULT_LANG: wanted["notice"]}
        xmp["Xmp.xmpRights.Marked"] = "True"  # Lightroom's Copyright Status: Copyrighted
        iptc["Iptc.Application2.Copyright"] = wanted["notice"]
    if "usage_terms" in wanted:
        xmp["Xmp.xmpRights.UsageTerms"] = {_DEFAULT_LANG: wanted["usage_terms"]}
    if "url" in wanted:
        xmp["Xmp.xmpRights.WebStatement"] = wanted["url"]
    if iptc:
        iptc = _iptc_in_its_charset(iptc, output_iptc)
    return exif, iptc, xmp


def set_rights(image, changes: tuple[dict, dict, dict]) -> None:
    """Write ``changes`` (rights_changes' EXIF, IPTC and XMP values) into a parsed exiv2
    ``image``."""
    for group, values in zip(("exif", "iptc", "xmp"), changes):
        if values:
            getattr(image, f"modify_{group}")(values)


def _iptc_in_its_charset(iptc: dict[str, Any], existing: dict[str, Any]) -> dict[str, Any]:
    # IPTC text is read in the character set the record declares (none: Latin-1 to most
    # readers). Ours is UTF-8: declared when the record is new or says UTF-8 already; into a
    # record in another set only plain ASCII goes (EXIF and XMP carry the rest).
    charset = existing.get("Iptc.Envelope.CharacterSet")
    if not existing or charset == _UTF8:
        return {**iptc, "Iptc.Envelope.CharacterSet": _UTF8}
    return {key: value for key, value in iptc.items() if all(_text(v).isascii() for v in (
        value if isinstance(value, list) else [value]))}


def with_rights(summary: dict, rights: Rights | None) -> dict:
    """The photo's metadata ``summary`` as its outputs carry it: Artist and Copyright from
    ``rights`` where the photo has none (or always, with ``replace``). For the watermark's
    ``{artist}`` and ``{copyright}``."""
    if not rights:
        return summary
    exif = dict(summary.get("exif") or {})
    values = rights.values(summary.get("date_taken"))
    for field, tag in (("creator", "Exif.Image.Artist"), ("notice", "Exif.Image.Copyright")):
        if field in values and (rights.replace or not _text(exif.get(tag))):
            exif[tag] = values[field]
    return {**summary, "exif": exif}


def same_text(a: Any, b: Any) -> bool:
    """Whether two tag values say the same, whatever shapes exiv2 gave them."""
    return _text(a) == _text(b)


def _text(value: Any) -> str:
    """A tag's value as text ("" when empty), whatever shape exiv2 gave it."""
    if value is None:
        return ""
    if isinstance(value, dict):  # a language alternative: {'lang="x-default"': text}
        return " ".join(_text(v) for v in value.values()).strip()
    if isinstance(value, (list, tuple)):
        return " ".join(_text(v) for v in value).strip()
    return str(value).strip()
