"""Keyed pseudonyms for DICOM identifiers.

HMAC-SHA256 with a secret key: stable for one key (so reruns and joins work), and not
reversible or guessable from public UIDs without the key.
"""

from __future__ import annotations

import hashlib
import hmac


def pseudonym(key: bytes, kind: str, value: str, length: int = 24) -> str:
    """``<kind>-<hex>``: the same (key, kind, value) always gives the same id."""
    digest = hmac.new(key, f"{kind}\x00{value}".encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{kind}-{digest[:length]}"
