"""Photo metadata: read a summary for the catalog, carry EXIF/IPTC/XMP/ICC over to outputs.

exiv2 (through pyexiv2, which bundles libexiv2) does the work, because it is the one library
here that copies EXIF, IPTC, XMP and ICC faithfully and writes XMP in our own namespace
(DESIGN.md section 4). The modules, one job each:

* ``exiv2`` — parsing bytes with exiv2 leniently, reading tag groups, the shared lock;
* ``values`` — parsing rationals, exposure times, GPS coordinates and dates;
* ``summary`` — the summary the catalog stores (``read_summary``), with ``pillow_fallback``
  for EXIF that exiv2 refuses;
* ``policies`` — which tags an output keeps (RAW-only tags, the metadata policies);
* ``copying`` / ``writing`` — ``write_output_metadata``; ``thumbnail`` — the fresh thumbnail;
* ``record`` — our XMP record and ``xmp:CreatorTool``; ``icc`` — embedded profiles;
* ``sidecar`` — ``.xmp`` sidecars next to outputs.
"""

from photobatch.plugins.metadata.exiv2 import NAMESPACE_PREFIX, NAMESPACE_URI, MetadataError
from photobatch.plugins.metadata.icc import icc_profile
from photobatch.plugins.metadata.policies import POLICIES
from photobatch.plugins.metadata.record import creator_tool, dumps_params, read_record
from photobatch.plugins.metadata.sidecar import sidecar_path, write_sidecar
from photobatch.plugins.metadata.summary import read_summary
from photobatch.plugins.metadata.writing import write_output_metadata

__all__ = [
    "MetadataError",
    "POLICIES",
    "NAMESPACE_URI",
    "NAMESPACE_PREFIX",
    "read_summary",
    "read_record",
    "write_output_metadata",
    "icc_profile",
    "creator_tool",
    "dumps_params",
    "sidecar_path",
    "write_sidecar",
]
