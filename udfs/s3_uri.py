"""``s3://bucket/key`` URIs: the one place they are split (the job, the tooling, the notebooks).

>>> split_s3_uri("s3://archive/clicksentry/models/f/current.json")
('archive', 'clicksentry/models/f/current.json')
>>> split_s3_uri("s3://archive")
('archive', '')
>>> split_s3_uri("/srv/archive")
Traceback (most recent call last):
...
ValueError: '/srv/archive' is not s3://bucket[/key]
"""

from __future__ import annotations


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``(bucket, key)`` of an ``s3://`` URI; the key (or prefix) may be empty."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket:
        raise ValueError(f"{uri!r} is not s3://bucket[/key]")
    return bucket, key
