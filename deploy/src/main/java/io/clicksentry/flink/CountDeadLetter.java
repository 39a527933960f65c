package io.clicksentry.flink;

import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;

import java.util.HashMap;
import java.util.Map;

/**
 * Returns a dead letter's reason unchanged and counts it: the counter {@code deadLetters} and
 * one per reason, {@code deadLetters_<reason>} with every character that is not a letter or a
 * digit as {@code _} ({@code missing_field:ad_id} counts in {@code deadLetters_missing_field_ad_id}),
 * all in the operator's metric group {@code kinesisanalytics.clicksentry} ({@link Metrics}).
 *
 * <pre>{@code
 * CREATE TEMPORARY SYSTEM FUNCTION count_dead_letter AS 'io.clicksentry.flink.CountDeadLetter'
 *   LANGUAGE JAVA;
 * SELECT payload, count_dead_letter(reason) FROM classified WHERE reason IS NOT NULL;
 * }</pre>
 */
public class CountDeadLetter extends ScalarFunction {

    private static final long serialVersionUID = 1L;

    private transient MetricGroup metrics;
    private transient Counter total;
    private transient Map<String, Counter> byReason;

    @Override
    public void open(FunctionContext context) {
        metrics = Metrics.of(context.getMetricGroup());
        total = metrics.counter("deadLetters");
        byReason = new HashMap<>();
    }

    /** The reason, counted (a NULL reason is no dead letter: not counted). */
    public String eval(String reason) {
        if (reason != null && metrics != null) {
            total.inc();
            byReason.computeIfAbsent(reason, r -> metrics.counter(metricName(r))).inc();
        }
        return reason;
    }

    /** {@code deadLetters_} and the reason with every non-alphanumeric character as {@code _}. */
    static String metricName(String reason) {
        return "deadLetters_" + reason.replaceAll("[^A-Za-z0-9]", "_");
    }
}
