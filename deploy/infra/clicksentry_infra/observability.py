"""The dashboard and the alarms: the job's own Flink metrics, the service's, the Lambda's EMF.

Job metrics (the contract's ``metrics``, from ``udfs/operator_metrics.py``) are the job's Flink
metrics as Managed Flink publishes them: namespace ``AWS/KinesisAnalytics``, dimension
``Application``. A Flink counter is published as its running count (back to 0 when the job
restarts), so "how many in this period" is the increase over the period — or the value itself
just after a restart: :func:`per_period`. Every alarm notifies the operator topic, on alarm and
on recovery.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from clicksentry_infra import spec

FIVE_MINUTES = cdk.Duration.minutes(5)
ONE_MINUTE = cdk.Duration.minutes(1)
#: A consumer this far behind the head of its stream is lagging (milliseconds).
MAX_LAG_MS = 60_000
#: Share of events dead-lettered over five minutes that pages the operator.
MAX_DEAD_LETTER_SHARE = 0.05


def per_period(metric: cw.Metric, label: str) -> cw.MathExpression:
    """How much a running count grew in each period (its value, right after a restart)."""
    name = metric.metric_name[0].lower() + metric.metric_name[1:]
    running = cw.MathExpression(
        expression=f"FILL({name}, 0)", using_metrics={name: metric}, period=metric.period
    )
    return cw.MathExpression(
        expression=f"IF(DIFF({name}Count) < 0, {name}Count, DIFF({name}Count))",
        using_metrics={f"{name}Count": running},
        label=label,
        period=metric.period,
    )


class Observability(Construct):
    """Dashboard ``clicksentry`` and the alarms, actions to the operator topic."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        application_name: str,
        clicks_stream: kinesis.Stream,
        function: lambda_.Function,
        dlqs: list[sqs.Queue],
        api: apigw.RestApi,
        operator_topic: sns.Topic,
        dead_man_minutes: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.application_name = application_name
        self.action = cw_actions.SnsAction(operator_topic)
        self.alarms: list[cw.Alarm] = []
        dead_man = cdk.Duration.minutes(dead_man_minutes)

        events_arriving = clicks_stream.metric_incoming_records(
            period=dead_man, statistic="Sum", label="clicks arriving"
        )
        scored = per_period(self.job_metric("windowsScored", dead_man), "windows scored")
        self.alarm(
            "NoScoredWindows",
            cw.MathExpression(
                expression="IF(events > 0 AND scored <= 0, 1, 0)",
                using_metrics={"events": events_arriving, "scored": scored},
                period=dead_man,
                label="clicks arrive, no window scored",
            ),
            threshold=1,
            description=f"Dead man: clicks arrived on the clicks stream but the job scored no "
            f"window in {dead_man_minutes} minutes (job stuck, stopped or its watermark held).",
            evaluation_periods=1,
        )
        self.alarm(
            "JobDown",
            self.service_metric("downtime", ONE_MINUTE, "Maximum"),
            threshold=0,
            description="The job is down or recovering (downtime > 0), or reports nothing.",
            evaluation_periods=3,
            missing=cw.TreatMissingData.BREACHING,
        )
        self.alarm(
            "JobRestarting",
            per_period(self.service_metric("fullRestarts", FIVE_MINUTES, "Maximum"), "restarts"),
            threshold=0,
            description="The job restarted in the last five minutes.",
        )
        self.alarm(
            "CheckpointFailures",
            per_period(
                self.service_metric("numberOfFailedCheckpoints", FIVE_MINUTES, "Maximum"),
                "failed checkpoints",
            ),
            threshold=0,
            description="A checkpoint failed: model state is not being saved.",
        )
        self.alarm(
            "ConsumerLag",
            self.service_metric("millisBehindLatest", ONE_MINUTE, "Maximum"),
            threshold=MAX_LAG_MS,
            description=f"The job reads the clicks stream more than {MAX_LAG_MS // 1000} s "
            "behind its head (millisBehindLatest) for five minutes.",
            evaluation_periods=5,
        )
        dead_letters = per_period(self.job_metric("deadLetters", FIVE_MINUTES), "dead letters")
        events_in = per_period(self.job_metric("eventsIn", FIVE_MINUTES), "events in")
        self.dead_letter_share = cw.MathExpression(
            expression="IF(events > 0, dead / events, 0)",
            using_metrics={"dead": dead_letters, "events": events_in},
            period=FIVE_MINUTES,
            label="dead-letter share",
        )
        self.alarm(
            "DeadLetterRate",
            self.dead_letter_share,
            threshold=MAX_DEAD_LETTER_SHARE,
            description=f"More than {MAX_DEAD_LETTER_SHARE:.0%} of events were dead-lettered "
            "in five minutes (a producer sends malformed or late clicks).",
        )
        self.alarm(
            "AlertsLambdaErrors",
            function.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
            threshold=0,
            description="The alerting Lambda failed invocations (records are being retried).",
        )
        self.alarm(
            "AlertsIteratorAge",
            function.metric("IteratorAge", period=ONE_MINUTE, statistic="Maximum"),
            threshold=MAX_LAG_MS,
            description="The alerting Lambda reads anomalies more than a minute late.",
            evaluation_periods=5,
        )
        for queue in dlqs:
            self.alarm(
                f"Depth{queue.node.id}",
                queue.metric_approximate_number_of_messages_visible(
                    period=FIVE_MINUTES, statistic="Maximum"
                ),
                threshold=0,
                description=f"Messages wait in {queue.node.id}: records the alerting could not "
                "handle (see docs/alerting.md).",
            )
        self.alarm(
            "IngestServerErrors",
            api.metric_server_error(period=FIVE_MINUTES, statistic="Sum"),
            threshold=0,
            description="POST /clicks answered 5xx (Kinesis throttling or errors).",
        )
        self.dashboard = self._dashboard(clicks_stream, function, dlqs, api, events_in, scored)

    def job_metric(self, name: str, period: cdk.Duration, statistic: str = "Maximum"):
        """One of the job's own metrics (a running count or a gauge) for the application."""
        return cw.Metric(
            namespace=spec.FLINK_NAMESPACE,
            metric_name=name,
            dimensions_map={"Application": self.application_name},
            period=period,
            statistic=statistic,
        )

    service_metric = job_metric

    def alert_metric(self, name: str) -> cw.Metric:
        """One of the alerting Lambda's EMF metrics (``alerting/metrics.py``)."""
        return cw.Metric(
            namespace=spec.ALERTS_NAMESPACE,
            metric_name=name,
            dimensions_map={"service": spec.FUNCTION},
            period=FIVE_MINUTES,
            statistic="Sum",
        )

    def alarm(
        self,
        construct_id: str,
        metric: cw.IMetric,
        *,
        threshold: float,
        description: str,
        evaluation_periods: int = 1,
        missing: cw.TreatMissingData = cw.TreatMissingData.NOT_BREACHING,
    ) -> cw.Alarm:
        """An alarm above ``threshold`` that notifies the operator topic."""
        alarm = cw.Alarm(
            self,
            construct_id,
            alarm_name=f"clicksentry-{construct_id}",
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            comparison_operator=(
                cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
                if construct_id == "NoScoredWindows"
                else cw.ComparisonOperator.GREATER_THAN_THRESHOLD
            ),
            treat_missing_data=missing,
        )
        alarm.add_alarm_action(self.action)
        alarm.add_ok_action(self.action)
        self.alarms.append(alarm)
        return alarm

    def _dashboard(self, clicks_stream, function, dlqs, api, events_in, scored) -> cw.Dashboard:
        def graph(title: str, left: list, right: list | None = None, width: int = 8):
            return cw.GraphWidget(title=title, left=left, right=right or [], width=width, height=6)

        def job(name: str, label: str, period=FIVE_MINUTES):
            return per_period(self.job_metric(name, period), label)

        dead_letter_reasons = cw.MathExpression(
            expression=(
                f"SEARCH('{{{spec.FLINK_NAMESPACE},Application}} "
                f"Application=\"{self.application_name}\" deadLetters_', 'Maximum', 300)"
            ),
            using_metrics={},
            label="by reason (running counts)",
            period=FIVE_MINUTES,
        )
        widgets = [
            [
                graph(
                    "Throughput (per 5 min)",
                    [
                        clicks_stream.metric_incoming_records(
                            period=FIVE_MINUTES, statistic="Sum", label="clicks stream"
                        ),
                        events_in,
                        api.metric_count(
                            period=FIVE_MINUTES, statistic="Sum", label="ingest API requests"
                        ),
                    ],
                ),
                graph(
                    "Lag (ms)",
                    [
                        self.service_metric("millisBehindLatest", ONE_MINUTE, "Maximum"),
                        self.job_metric("watermarkLagMs", ONE_MINUTE),
                    ],
                    [
                        function.metric(
                            "IteratorAge",
                            period=ONE_MINUTE,
                            statistic="Maximum",
                            label="alerting iterator age",
                        )
                    ],
                ),
                graph(
                    "Checkpoints and restarts",
                    [
                        self.service_metric("lastCheckpointDuration", ONE_MINUTE, "Maximum"),
                    ],
                    [
                        job("numberOfFailedCheckpoints", "failed checkpoints"),
                        job("fullRestarts", "restarts"),
                        self.service_metric("downtime", ONE_MINUTE, "Maximum"),
                    ],
                ),
            ],
            [
                graph(
                    "Dead letters",
                    [job("deadLetters", "dead letters"), dead_letter_reasons],
                    [self.dead_letter_share],
                ),
                graph(
                    "Scoring and anomalies (per 5 min)",
                    [
                        scored,
                        job("anomalies", "anomalies"),
                        job("entitiesEvicted", "entities evicted"),
                    ],
                    [
                        self.job_metric("entitiesTracked", FIVE_MINUTES),
                        self.job_metric("modelAgeWindows", FIVE_MINUTES),
                    ],
                ),
                graph(
                    "Alert outcomes (per 5 min)",
                    [self.alert_metric(name) for name in spec.ALERT_METRICS],
                    [function.metric_errors(period=FIVE_MINUTES, statistic="Sum")]
                    + [
                        q.metric_approximate_number_of_messages_visible(
                            period=FIVE_MINUTES, statistic="Maximum", label=q.node.id
                        )
                        for q in dlqs
                    ],
                ),
            ],
            [
                cw.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=24, height=4),
            ],
        ]
        return cw.Dashboard(self, "Dashboard", dashboard_name=spec.DASHBOARD, widgets=widgets)
