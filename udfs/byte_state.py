"""Keyed state of raw bytes that reads and writes alike in both of PyFlink's execution modes.

Every stateful operator keeps versioned msgpack bytes (``Types.PRIMITIVE_ARRAY(Types.BYTE())``,
a Java ``byte[]`` in the snapshot). In process mode PyFlink hands them to Python as ``bytes``.
In thread mode (``python.execution-mode: thread``, :mod:`flink_jobs.config`'s
``job.python_execution_mode``) PyFlink 1.20's state converter turns a ``byte[]`` into a tuple of
ints, hands ``bytes`` to Java as one too, and fails on an empty value (``tuple(None)``). The
interpreter it embeds (pemja) maps ``byte[]`` and ``bytes`` itself, so :func:`byte_state` gives
a thread-mode handle the identity converter: the operator's code and the state's bytes are the
same in both modes.

A process-mode handle (or anything that is not a thread-mode state) is left as it is:

>>> state = object()
>>> byte_state(state) is state
True
"""

from __future__ import annotations

from typing import TypeVar

from pyflink.common import Types

#: The type of every byte-valued state (and map state value) of the job's operators.
BYTES = Types.PRIMITIVE_ARRAY(Types.BYTE())

#: Where PyFlink's thread-mode state handles live.
_THREAD_MODE_STATES = "pyflink.fn_execution.datastream.embedded."

State = TypeVar("State")


def byte_state(state: State) -> State:
    """``state`` (a handle of :data:`BYTES` values) reading and writing ``bytes`` as they are.

    A process-mode handle is returned unchanged; a thread-mode one gets identity converters
    for its values (map keys keep theirs).
    """
    if not type(state).__module__.startswith(_THREAD_MODE_STATES):
        return state
    # Importable only inside the interpreter thread mode embeds (they import pemja's Java side).
    from pyflink.fn_execution.datastream.embedded.state_impl import ListStateImpl, MapStateImpl
    from pyflink.fn_execution.embedded.converters import IdentityDataConverter, ListDataConverter

    identity = IdentityDataConverter()
    if isinstance(state, MapStateImpl):
        state._v_converter = identity
    elif isinstance(state, ListStateImpl):
        state._element_converter = identity
        state._value_converter = ListDataConverter(identity)
    else:
        state._value_converter = identity
    return state
