"""Local tooling around the clicksentry runtime: never shipped, never imported by it.

The ``clicksentry`` command (:mod:`localdev.cli`), the click simulator, the local AWS emulator
stack (kinesis-mock and moto server), the Kinesis producer, the run summary, the local runner of
the alerting Lambda's event source mapping, the Python reference windowing and the benchmarks.
This package may import the runtime packages (``flink_jobs``, ``udfs``, ``models``,
``alerting``); they never import it.
"""
