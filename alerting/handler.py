"""Lambda entry point ``alerting.handler.lambda_handler`` for the anomalies stream's event source.

The handler only delegates: powertools' batch processor calls :func:`record_handler` once per
Kinesis record and returns the records that failed as ``batchItemFailures``, so the event source
mapping retries from the first failed sequence number instead of replaying the whole batch. Each
invocation ends with one EMF line of counts (:mod:`alerting.metrics`).
"""

from __future__ import annotations

import functools
import os

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from alerting import metrics as alert_metrics
from alerting.alerter import Alerter

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "clicksentry-alerts"))
metrics = alert_metrics.new_metrics(os.environ)
outcomes = alert_metrics.OutcomeCounts()
copy_config_to_registered_loggers(source_logger=logger, include={"alerting"})
processor = BatchProcessor(
    event_type=EventType.KinesisDataStreams, raise_on_entire_batch_failure=False
)


@functools.cache
def alerter() -> Alerter:
    """The execution environment's alerter; its configuration is validated on the cold start."""
    return Alerter.from_environment(os.environ)


def record_handler(record: KinesisStreamRecord) -> str:
    """Process one Kinesis record; an exception marks only this record as failed."""
    outcome = alerter().process(record)
    outcomes.count(outcome)
    return outcome


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: dict, context: LambdaContext) -> PartialItemFailureResponse:
    """Handle one batch from the Kinesis event source mapping, then announce ended incidents."""
    try:
        alerter().idempotency.register_lambda_context(context)
        response = process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
        outcomes.count("ended", alerter().announce_ended())
    finally:
        outcomes.add_to(metrics)
    return response
