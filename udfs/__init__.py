"""The job's Python operator: keyed scoring of entity windows.

Flink SQL and the project's Java UDFs (``deploy/src``: ``parse_click``, ``event_time_of``) do
everything per event; Python runs once per shard and window. :mod:`udfs.scoring_operator` is the
``KeyedProcessFunction`` the job wires in, :mod:`udfs.shard` its logic in plain Python (tested
without Flink), and :mod:`udfs.scored_window` the record and row it emits.
"""
