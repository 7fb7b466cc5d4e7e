"""Example drop-in plugin: append one line per output written to a log file.

Copy this file into your plugins folder (``photobatch --plugins-dir DIR`` or the config's
``[plugins] dir``). The log file is ``$PHOTOBATCH_OUTPUT_LOG``, else ``photobatch-outputs.tsv``
in the current folder.
"""

import os
from pathlib import Path

from photobatch.plugins import hookimpl

__version__ = "1.0"


@hookimpl
def photobatch_output_written(source, output, recipe, run_id):
    """Append ``run_id, recipe, source, output`` as one tab-separated line."""
    log = Path(os.environ.get("PHOTOBATCH_OUTPUT_LOG", "photobatch-outputs.tsv"))
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"{run_id}\t{recipe}\t{source}\t{output}\n")
