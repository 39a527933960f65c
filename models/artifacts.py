"""scikit-learn artefacts as ``skops`` files: never pickle or joblib.

Nothing is deserialised unless it is pinned or the job's own state:

* a file (:func:`load`) is read only if its SHA-256 equals the pin its caller or configuration
  gives (:func:`sha256_of` prints it at training time), so a file swapped or altered in a bucket
  is refused before skops parses a byte of it;
* bytes the job wrote to its own Flink state (:func:`loads` without a pin) are trusted as
  checkpoints are.

Either way skops' trusted-type check still runs (scikit-learn estimators, numpy arrays and
builtins only). That check alone is not enough with the pinned skops 0.11.0 (CVE-2025-54412: a
crafted file can hide an ``operator`` call behind trusted-looking types), hence the pin; see
SECURITY.md.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path
from typing import Any

import skops.io as sio

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def sha256_of(data: bytes) -> str:
    """The SHA-256 of ``data`` as 64 lower-case hex digits: the pin for an artefact.

    >>> sha256_of(b"")
    'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    """
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path) -> str:
    """The pin of the artefact file at ``path`` (:func:`sha256_of` its bytes).

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "empty.skops"
    >>> path.write_bytes(b"")
    0
    >>> file_sha256(path)[:12]
    'e3b0c44298fc'
    """
    return sha256_of(Path(path).read_bytes())


def check_pin(data: bytes, sha256: str, what: str = "artefact") -> None:
    """Refuse ``data`` unless its SHA-256 equals the pin ``sha256`` (hex, any case).

    >>> check_pin(b"", "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855")
    >>> check_pin(b"x", "0" * 64)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: artefact refused: SHA-256 expected 000...000, got 2d711642b726b044...
    >>> check_pin(b"x", "abc")
    Traceback (most recent call last):
    ...
    ValueError: artefact refused: the pin 'abc' is not a SHA-256 (64 hex digits)
    """
    expected = str(sha256).strip().lower()
    if not _SHA256_HEX.match(expected):
        raise ValueError(f"{what} refused: the pin {sha256!r} is not a SHA-256 (64 hex digits)")
    actual = sha256_of(data)
    if not hmac.compare_digest(actual, expected):
        raise ValueError(f"{what} refused: SHA-256 expected {expected}, got {actual}")


def dumps(obj: Any) -> bytes:
    """Serialise with skops.

    >>> loads(dumps({"n": 3}))
    {'n': 3}
    """
    return sio.dumps(obj)


def loads(data: bytes, sha256: str | None = None) -> Any:
    """Deserialise skops bytes: pinned ones, or (``sha256=None``) the job's own state bytes.

    A pin that does not match refuses the bytes; so does any type skops does not trust by
    default. Pass ``sha256=None`` only for bytes this job wrote to its own Flink state.

    >>> data = dumps([1, 2])
    >>> loads(data, sha256=sha256_of(data))
    [1, 2]
    >>> loads(data + b" ", sha256=sha256_of(data))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: artefact refused: SHA-256 expected ..., got ...
    """
    if sha256 is not None:
        check_pin(data, sha256)
    untrusted = sio.get_untrusted_types(data=data)
    if untrusted:
        raise ValueError(f"artefact holds untrusted types: {untrusted}")
    return sio.loads(data)


def save(obj: Any, path: str | Path) -> str:
    """Write an artefact file; returns its pin (the SHA-256 of the bytes written).

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "a.skops"
    >>> pin = save({"n": 1}, path)
    >>> pin == file_sha256(path)
    True
    """
    data = dumps(obj)
    Path(path).write_bytes(data)
    return sha256_of(data)


def load(path: str | Path, sha256: str) -> Any:
    """Read an artefact file whose SHA-256 must equal the pin ``sha256`` (see :func:`loads`).

    The file is read once; the bytes hashed are the bytes deserialised.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "a.skops"
    >>> pin = save({"n": 1}, path)
    >>> load(path, sha256=pin)
    {'n': 1}
    >>> load(path, sha256="0" * 64)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: artefact ...a.skops refused: SHA-256 expected 000..., got ...
    """
    data = Path(path).read_bytes()
    check_pin(data, sha256, what=f"artefact {path}")
    return loads(data)
