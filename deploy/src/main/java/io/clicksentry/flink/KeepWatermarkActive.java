package io.clicksentry.flink;

import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.runtime.watermarkstatus.WatermarkStatus;

/**
 * Passes records and watermarks through and never tells downstream that its input is idle.
 *
 * <p>The job places it right after the exchange that follows its sources: there the input
 * combines the watermarks of every source subtask, and one that is idle (a silent Kinesis shard,
 * {@code job.idle_timeout_ms}) stops holding the combined watermark back. Past this point idleness
 * would do harm: operators whose inputs turn idle and active again at slightly different moments
 * (the two sides of a window join, the subtasks feeding one window) let the watermark of the
 * first active input close windows that records still on their way through the other belong to,
 * and Flink drops such records without a trace. Downstream of this operator every input stays
 * active and holds its last watermark, so a window fires only once every record before that
 * watermark has reached it; when no source has traffic, the watermark simply waits.
 */
public class KeepWatermarkActive<T> extends AbstractStreamOperator<T>
        implements OneInputStreamOperator<T, T> {

    private static final long serialVersionUID = 1L;

    @Override
    public void processElement(StreamRecord<T> element) {
        output.collect(element);
    }

    @Override
    public void processWatermarkStatus(WatermarkStatus status) {
        // Downstream stays ACTIVE; the watermark is forwarded by processWatermark as usual.
    }
}
