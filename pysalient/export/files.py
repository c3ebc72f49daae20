"""Reading the ``pysalient.json`` metadata embedded in exported files."""

from __future__ import annotations

import json
from typing import Any, Dict, Union

from pysalient.export.contract import METADATA_KEY, check_metadata


def parse_metadata(text: Union[str, bytes], source: str) -> Dict[str, Any]:
    """Parses and checks the ``pysalient.json`` text of ``source``; ValueError naming the file otherwise."""
    try:
        metadata = json.loads(text)
    except ValueError as error:
        raise ValueError(f"{source}: {METADATA_KEY} is not valid JSON ({error})") from error
    return check_metadata(metadata, source)
