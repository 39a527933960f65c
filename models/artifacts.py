"""scikit-learn artefacts as ``skops`` files: never pickle or joblib.

Loading checks every type in the file against an explicit trusted list first — the types skops
trusts by default (scikit-learn estimators, numpy arrays, builtins) and nothing else — so a
tampered file from a bucket cannot run code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import skops.io as sio

# Beyond skops' own defaults (sklearn, numpy, builtins), these and only these may appear.
TRUSTED_TYPES: tuple[str, ...] = ()


def dumps(obj: Any) -> bytes:
    """Serialise with skops.

    >>> loads(dumps({"n": 3}))
    {'n': 3}
    """
    return sio.dumps(obj)


def loads(data: bytes) -> Any:
    """Deserialise skops bytes, refusing any type outside :data:`TRUSTED_TYPES`."""
    untrusted = [t for t in sio.get_untrusted_types(data=data) if t not in TRUSTED_TYPES]
    if untrusted:
        raise ValueError(f"artefact holds untrusted types: {untrusted}")
    return sio.loads(data, trusted=list(TRUSTED_TYPES))


def save(obj: Any, path: Path) -> None:
    """Write an artefact file."""
    Path(path).write_bytes(dumps(obj))


def load(path: Path) -> Any:
    """Read an artefact file (see :func:`loads`)."""
    return loads(Path(path).read_bytes())
