"""Keyed pseudonyms for DICOM identifiers.

HMAC-SHA256 with a secret key: stable for one key (so reruns and joins work), and not
reversible or guessable from public UIDs without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import re

#: A DICOM UID inside a file or folder name (at least 5 numeric components, e.g. 1.2.840.113619.2...).
_UID = re.compile(r"(?<![\d.])[0-9]+(?:\.[0-9]+){4,}")


def pseudonym(key: bytes, kind: str, value: str, length: int = 24) -> str:
    """``<kind>-<hex>``: the same (key, kind, value) always gives the same id."""
    digest = hmac.new(key, f"{kind}\x00{value}".encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{kind}-{digest[:length]}"


def scrub_uids(path: str, key: bytes) -> str:
    """``path`` with every DICOM UID in it replaced by its pseudonym: exports often name files by UID."""
    return _UID.sub(lambda match: pseudonym(key, "uid", match.group(0), 16), path)
