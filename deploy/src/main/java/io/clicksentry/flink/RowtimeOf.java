package io.clicksentry.flink;

import org.apache.flink.table.functions.ScalarFunction;

/**
 * The rowtime of an event: its event time when that is plausible, else 0 (dead-lettered as
 * {@code event_time_out_of_range}). One timestamp far ahead must not drag the watermark forward
 * and make every later event late.
 *
 * <p>An event time is plausible when it is at least 1, at most {@code wallClockLimitMs} (wall-clock
 * time plus {@code job.max_future_ms}) and at most {@code maxAheadMs} ahead of the latest event
 * time this instance accepted ({@code job.max_ahead_ms}; 0 = no such bound). A stream that
 * really moves ahead — a producer catching up after an outage — is followed once
 * {@link #RESYNC_EVENTS} events in a row are ahead: the last of them is accepted and the ones
 * before it were dead-lettered.
 *
 * <p>The decision depends on the events this instance has seen, in order (one instance per source
 * subtask), so the function is not deterministic for the planner: it must be called once per row,
 * from the rowtime column.
 *
 * <pre>{@code
 * CREATE TEMPORARY SYSTEM FUNCTION rowtime_of AS 'io.clicksentry.flink.RowtimeOf' LANGUAGE JAVA;
 * ts AS TO_TIMESTAMP_LTZ(rowtime_of(event_time_of(payload), UNIX_TIMESTAMP() * 1000 + 3600000,
 *                                   300000), 3)
 * }</pre>
 */
public class RowtimeOf extends ScalarFunction {

    private static final long serialVersionUID = 1L;

    /** Events in a row ahead of the stream after which the stream is taken to have moved. */
    static final int RESYNC_EVENTS = 100;

    private long latest = Long.MIN_VALUE;
    private int aheadInARow = 0;

    public long eval(Long eventTime, long wallClockLimitMs, long maxAheadMs) {
        if (eventTime == null || eventTime < 1 || eventTime > wallClockLimitMs) {
            return 0L;
        }
        long time = eventTime;
        boolean first = latest == Long.MIN_VALUE;
        if (first || maxAheadMs <= 0 || time <= latest + maxAheadMs) {
            aheadInARow = 0;
            latest = first ? time : Math.max(latest, time);
            return time;
        }
        if (++aheadInARow >= RESYNC_EVENTS) {
            aheadInARow = 0;
            latest = time;
            return time;
        }
        return 0L;
    }

    @Override
    public boolean isDeterministic() {
        return false;
    }
}
