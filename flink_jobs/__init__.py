"""Flink job wiring for clicksentry: configuration, sources, sinks and the job graph."""
