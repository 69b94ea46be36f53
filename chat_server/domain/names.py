"""Names that look alike: Unicode TR39 confusable skeletons, computed by ICU.

`victim` spelled with a Cyrillic i and `victim` are different keys but the same skeleton, so the
second to register is refused with `name_taken` (docs/protocol.md §1.3). ICU's
SpoofChecker implements TR39's skeleton from Unicode's own confusables data.
"""

from __future__ import annotations

import functools
import unicodedata

import icu


@functools.cache
def _checker() -> icu.SpoofChecker:
    return icu.SpoofChecker()


def loose(name: str) -> str:
    """The name as it is read: compatibility forms folded (a fullwidth g is g), case
    ignored. The guest namespace is checked on this form."""
    return unicodedata.normalize("NFKC", name).casefold()


def skeleton(name: str) -> str:
    """TR39's skeleton of the loose form: two names with one skeleton look alike."""
    return unicodedata.normalize("NFC", _checker().getSkeleton(0, loose(name)))
