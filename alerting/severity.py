"""Severity of an anomaly, from how far past its threshold it scored."""

from __future__ import annotations

from enum import IntEnum


class Severity(IntEnum):
    """Ordered alert levels; a higher value is worse."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        """The lowercase name used in subjects and SNS message attributes.

        Examples:
            >>> Severity.HIGH.label
            'high'
        """
        return self.name.lower()


GRADE_FLOORS = ((0.75, Severity.CRITICAL), (0.5, Severity.HIGH), (0.25, Severity.MEDIUM))
CRITICAL_SCORE = 0.95


def severity_of(score: float, grade: float) -> Severity:
    """Map ``grade`` (0..1, how far past the threshold) to a severity; ``score`` >= 0.95: critical.

    Examples:
        >>> severity_of(score=0.55, grade=0.1)
        <Severity.LOW: 1>
        >>> severity_of(score=0.71, grade=0.8)
        <Severity.CRITICAL: 4>
        >>> severity_of(score=0.97, grade=0.3)
        <Severity.CRITICAL: 4>
        >>> severity_of(score=0.7, grade=0.5).label
        'high'
    """
    if score >= CRITICAL_SCORE:
        return Severity.CRITICAL
    return next((level for floor, level in GRADE_FLOORS if grade >= floor), Severity.LOW)
