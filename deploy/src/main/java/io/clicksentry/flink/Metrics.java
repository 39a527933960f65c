package io.clicksentry.flink;

import org.apache.flink.metrics.MetricGroup;

/** Where the job's own metrics live (the Python side, and the list of all: udfs/operator_metrics.py). */
final class Metrics {

    /** The user group above: Managed Flink sends custom metrics to CloudWatch only from below it. */
    static final String CLOUDWATCH_GROUP = "kinesisanalytics";
    /** The user metric group of every clicksentry metric. */
    static final String GROUP = "clicksentry";

    private Metrics() {}

    /** The clicksentry group below {@code operator}'s metric group. */
    static MetricGroup of(MetricGroup operator) {
        return operator.addGroup(CLOUDWATCH_GROUP).addGroup(GROUP);
    }
}
