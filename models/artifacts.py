"""scikit-learn artefacts as ``skops`` files: never pickle or joblib.

Loading refuses any type skops does not trust by default (it trusts scikit-learn estimators,
numpy arrays and builtins), so a tampered file from a bucket cannot run code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import skops.io as sio


def dumps(obj: Any) -> bytes:
    """Serialise with skops.

    >>> loads(dumps({"n": 3}))
    {'n': 3}
    """
    return sio.dumps(obj)


def loads(data: bytes) -> Any:
    """Deserialise skops bytes, refusing any type skops does not trust by default."""
    untrusted = sio.get_untrusted_types(data=data)
    if untrusted:
        raise ValueError(f"artefact holds untrusted types: {untrusted}")
    return sio.loads(data)


def save(obj: Any, path: Path) -> None:
    """Write an artefact file."""
    Path(path).write_bytes(dumps(obj))


def load(path: Path) -> Any:
    """Read an artefact file (see :func:`loads`)."""
    return loads(Path(path).read_bytes())
