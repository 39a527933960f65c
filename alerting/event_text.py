r"""Text that came from click events (entity ids, kinds, feature names …), made safe to show.

One rule for every subject, body line and message attribute (docs/alerting.md, "Text from events"):

* characters that are not visible text (control characters such as ``\n`` and ``\r``, format
  characters such as the right-to-left override, line and paragraph separators, surrogates,
  private-use and unassigned code points) and the backslash are written as Python-style escapes
  (``\n`` → ``\x0a``, U+202E → ``\u202e``, ``\`` → ``\\``), so a value is always one line and
  its escapes are unambiguous;
* the characters that make a link are *defanged* as in threat reports: ``://`` → ``[:]//``, a
  ``.`` followed by a letter → ``[.]``, ``@`` → ``[@]``; ``http://evil.example`` shows as
  ``http[:]//evil[.]example`` and no mail client or chat renders it as a link, while timestamps
  and version numbers (a dot before a digit) read as they are;
* a value is cut to a length limit, ending in ``...``.

The full anomaly record in the body keeps its exact data: :func:`record_json` neutralises the same
characters inside JSON strings with JSON's own ``\uXXXX`` escapes, so parsing it gives back the
record as received while nothing in it is clickable.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

TEXT_LIMIT = 200
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_SCHEME = re.compile(r"://")
_DOT_BEFORE_LETTER = re.compile(r"\.(?=[^\W\d_])")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def shown(text: str, limit: int = TEXT_LIMIT) -> str:
    r"""``text`` from an event as alerts show it: one line, escaped, defanged, at most ``limit``.

    Examples:
        >>> shown("ad-0007")
        'ad-0007'
        >>> print(shown("ad\n7\u202e http://evil.example/p?q=1 root@evil.example v1.2"))
        ad\x0a7\u202e http[:]//evil[.]example/p?q=1 root[@]evil[.]example v1.2
        >>> shown("checkout-\u00fcberweisung") == "checkout-\u00fcberweisung"
        True
        >>> shown("x" * 300, limit=10)
        'xxxxxxx...'
    """
    escaped = "".join(_escaped(char) for char in text)
    defanged = _DOT_BEFORE_LETTER.sub("[.]", _SCHEME.sub("[:]//", escaped)).replace("@", "[@]")
    return defanged if len(defanged) <= limit else defanged[: limit - 3] + "..."


def record_json(payload: Any) -> str:
    r"""``payload`` as indented, key-sorted ASCII JSON whose strings hold nothing clickable.

    Inside JSON strings ``:`` before ``//``, ``.`` before a letter and ``@`` are written as
    ``\u003a``, ``\u002e`` and ``\u0040``: the same data for any JSON parser, no link for a reader.

    Examples:
        >>> text = record_json({"entity_id": "http://evil.example", "t": "00:12:10.000Z", "n": 0.5})
        >>> print(text)
        {
          "entity_id": "http\u003a//evil\u002eexample",
          "n": 0.5,
          "t": "00:12:10.000Z"
        }
        >>> json.loads(text)["entity_id"]
        'http://evil.example'
    """
    text = json.dumps(payload, indent=2, sort_keys=True)
    return _JSON_STRING.sub(lambda match: _neutralised_json_string(match.group(0)), text)


def _escaped(char: str) -> str:
    if char == "\\":
        return "\\\\"
    if unicodedata.category(char) not in _HIDDEN_CATEGORIES:
        return char
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _neutralised_json_string(token: str) -> str:
    token = _SCHEME.sub("\\\\u003a//", token)
    return _DOT_BEFORE_LETTER.sub("\\\\u002e", token).replace("@", "\\u0040")
