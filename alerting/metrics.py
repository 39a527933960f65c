"""The alerting Lambda's CloudWatch metrics: EMF log lines written by powertools ``Metrics``.

One EMF line per invocation (namespace ``POWERTOOLS_METRICS_NAMESPACE``, default
``clicksentry/alerts``; dimension ``service``), each metric a count for that invocation, zeros
included so alarms and the dashboard see "nothing happened" rather than no data:

* ``AlertsSent`` — SNS messages published: new alerts, updates of an incident that worsened,
  and "ended" announcements;
* ``AlertsSuppressed`` — anomalies of an open incident within its cooldown (no message);
* ``Duplicates`` — anomalies delivered again after they were handled (nothing sent again);
* ``PoisonRecords`` — records that could not be decoded and went to the dead-letter queue after
  their last attempt.

The CDK stack (``deploy/infra``) graphs them on the ``clicksentry`` dashboard.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "clicksentry/alerts"
DEFAULT_SERVICE = "clicksentry-alerts"
ALERTS_SENT = "AlertsSent"
ALERTS_SUPPRESSED = "AlertsSuppressed"
DUPLICATES = "Duplicates"
POISON_RECORDS = "PoisonRecords"
METRIC_NAMES = (ALERTS_SENT, ALERTS_SUPPRESSED, DUPLICATES, POISON_RECORDS)
#: What :meth:`alerting.alerter.Alerter.process` returned (or ``ended``) → the metric it counts.
METRIC_OF_OUTCOME = {
    "alert": ALERTS_SENT,
    "update": ALERTS_SENT,
    "ended": ALERTS_SENT,
    "suppress": ALERTS_SUPPRESSED,
    "duplicate": DUPLICATES,
    "dead-letter": POISON_RECORDS,
}


def new_metrics(environ: Mapping[str, str]) -> Metrics:
    """Powertools ``Metrics`` for the namespace and service the environment names."""
    return Metrics(
        namespace=environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE,
        service=environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE,
    )


class OutcomeCounts:
    """Outcomes of one invocation, added to ``Metrics`` once at its end.

    Examples:
        >>> counts = OutcomeCounts()
        >>> counts.count("alert"); counts.count("suppress"); counts.count("ended", 2)
        >>> counts.totals()
        {'AlertsSent': 3, 'AlertsSuppressed': 1, 'Duplicates': 0, 'PoisonRecords': 0}
    """

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def count(self, outcome: str, times: int = 1) -> None:
        """Count ``times`` records (or announcements) that ended in ``outcome``."""
        metric = METRIC_OF_OUTCOME.get(outcome)
        if metric is None:
            logger.warning("outcome %r has no metric; not counted", outcome)
            return
        self._counts[metric] += times

    def totals(self) -> dict[str, int]:
        """Every metric's count so far, zeros included."""
        return {name: self._counts[name] for name in METRIC_NAMES}

    def add_to(self, metrics: Metrics) -> None:
        """Add the counts to ``metrics`` (flushed by ``log_metrics``) and start again at zero."""
        for name, value in self.totals().items():
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        self._counts.clear()
