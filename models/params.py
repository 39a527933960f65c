"""Parameters: read from the constructor's signature, checked by rules declared once per class.

A model stores each constructor parameter as given, under the parameter's name (learned state is
suffixed ``_``), so its parameters can be read back (:meth:`Parameterised.params`) and the model
rebuilt from them. Checks are declared as a class's ``CHECKS`` (see :func:`integer`,
:func:`positive`, :func:`non_negative`, :func:`in_range`, :func:`one_of`, :func:`boolean`,
:func:`name_list`) and run by :meth:`Parameterised.check_params`.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


@functools.cache
def param_names(cls: type) -> tuple[str, ...]:
    """The named parameters of ``cls``'s constructor, in order.

    >>> class Demo:
    ...     def __init__(self, a, b=2, *, c=3): ...
    >>> param_names(Demo)
    ('a', 'b', 'c')
    """
    return tuple(
        name for name, p in inspect.signature(cls).parameters.items() if p.kind in _NAMED
    )


@dataclass(frozen=True)
class Rule:
    """One parameter's check: ``test(value)`` must hold, else ``ValueError``.

    >>> integer("trees", 1).check(0)
    Traceback (most recent call last):
    ...
    ValueError: trees must be an integer >= 1, got 0
    """

    name: str
    test: Callable[[Any], bool]
    expected: str
    label: str = ""

    def check(self, value: Any) -> None:
        """Raise ``ValueError`` naming the parameter unless ``value`` passes."""
        if not self.test(value):
            raise ValueError(f"{self.label or self.name} must be {self.expected}, got {value!r}")


def integer(name: str, low: int, *, optional: bool = False, label: str = "") -> Rule:
    """An integer >= ``low`` (or ``None`` if ``optional``).

    >>> integer("n", 2, optional=True).test(None), integer("n", 2).test(2.0)
    (True, False)
    """
    return Rule(
        name,
        lambda v: (optional and v is None) or (isinstance(v, int) and v >= low),
        f"an integer >= {low}",
        label,
    )


def positive(name: str, *, label: str = "") -> Rule:
    """A number > 0.

    >>> positive("decay").check(-1)
    Traceback (most recent call last):
    ...
    ValueError: decay must be > 0, got -1
    """
    return Rule(name, lambda v: v > 0, "> 0", label)


def non_negative(name: str, *, finite: bool = False, label: str = "") -> Rule:
    """A number >= 0 (and finite, if ``finite``).

    >>> non_negative("z", finite=True).test(math.inf), non_negative("z").test(math.inf)
    (False, True)
    """
    return Rule(name, lambda v: (not finite or math.isfinite(v)) and v >= 0, ">= 0", label)


def in_range(
    name: str, low: float, high: float, *, open_low: bool = False, label: str = ""
) -> Rule:
    """A number in ``[low, high]``, or ``(low, high]`` if ``open_low``.

    >>> in_range("alpha", 0, 1, open_low=True).check(0.0)
    Traceback (most recent call last):
    ...
    ValueError: alpha must be in (0, 1], got 0.0
    """
    if open_low:
        return Rule(name, lambda v: low < v <= high, f"in ({low}, {high}]", label)
    return Rule(name, lambda v: low <= v <= high, f"in [{low}, {high}]", label)


def one_of(name: str, choices: Sequence[Any]) -> Rule:
    """One of ``choices``.

    >>> one_of("combine", ("mean", "max")).check("sum")
    Traceback (most recent call last):
    ...
    ValueError: combine must be one of ('mean', 'max'), got 'sum'
    """
    return Rule(name, lambda v: v in choices, f"one of {choices}")


def boolean(name: str, *, label: str = "") -> Rule:
    """``True`` or ``False`` (not 0 / 1).

    >>> boolean("sequential").check(1)
    Traceback (most recent call last):
    ...
    ValueError: sequential must be True or False, got 1
    """
    return Rule(name, lambda v: isinstance(v, bool), "True or False", label)


def name_list(name: str, *, optional: bool = False, label: str = "") -> Rule:
    """A non-empty list of distinct strings (or ``None`` if ``optional``); not one string.

    >>> name_list("columns", optional=True).test(None), name_list("columns").test("ctr")
    (True, False)
    >>> name_list("columns").check(["ctr", "ctr"])
    Traceback (most recent call last):
    ...
    ValueError: columns must be a non-empty list of distinct names, got ['ctr', 'ctr']
    """

    def test(v: Any) -> bool:
        if optional and v is None:
            return True
        return (
            isinstance(v, Sequence)
            and not isinstance(v, str | bytes)
            and len(v) > 0
            and all(isinstance(n, str) and n for n in v)
            and len(set(v)) == len(v)
        )

    return Rule(name, test, "a non-empty list of distinct names", label)


class Parameterised:
    """A model whose parameters are its constructor's, stored as given under their names.

    >>> class Demo(Parameterised):
    ...     CHECKS = (integer("size", 1),)
    ...     def __init__(self, size=3):
    ...         self.size = size
    ...         self.check_params()
    >>> Demo().params()
    {'size': 3}
    >>> Demo(0)
    Traceback (most recent call last):
    ...
    ValueError: size must be an integer >= 1, got 0
    """

    #: The parameter checks, run in order by :meth:`check_params`.
    CHECKS: ClassVar[tuple[Rule, ...]] = ()

    def params(self) -> dict[str, Any]:
        """The parameters as given."""
        return {name: getattr(self, name) for name in param_names(type(self))}

    def check_params(self) -> None:
        """Run the class's ``CHECKS`` on the stored parameters (``ValueError`` at the first)."""
        for rule in self.CHECKS:
            rule.check(getattr(self, rule.name))
