package io.clicksentry.flink;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;
import org.apache.flink.table.functions.ScalarFunction;

import java.io.IOException;

/**
 * The {@code event_time} of a raw click-event payload in epoch ms, as {@link ParseClickEvent}
 * types it (an integer number, or a string of an integer, within BIGINT), NULL when the payload
 * is NULL, longer than {@link JsonLimits#MAX_PAYLOAD_CHARS} or does not start a JSON object, when
 * a value before the field nests deeper than {@link JsonLimits#MAX_DEPTH}, or when the field is
 * absent, {@code null} or mistyped.
 *
 * <p>For the source's computed rowtime column: it stops reading at the first top-level
 * {@code event_time} value (and the token after it, so that a number cut off by the end of
 * the payload does not count), so content further on is not validated: a payload truncated or
 * with trailing garbage after it still gives the time, and with duplicate keys the first one
 * counts where {@code ParseClickEvent} takes the last. {@code ParseClickEvent} dead-letters the
 * first two as {@code bad_json} anyway (and a too-deep value after it as {@code too_deep}).
 *
 * <pre>{@code
 * CREATE TEMPORARY SYSTEM FUNCTION event_time_of AS 'io.clicksentry.flink.EventTimeOf'
 *   LANGUAGE JAVA;
 * }</pre>
 */
public class EventTimeOf extends ScalarFunction {

    private static final long serialVersionUID = 1L;

    public Long eval(String payload) {
        if (payload == null || JsonLimits.tooLarge(payload)) {
            return null;
        }
        try (JsonParser parser = JsonLimits.JSON.createParser(payload)) {
            if (parser.nextToken() != JsonToken.START_OBJECT) {
                return null;
            }
            while (parser.nextToken() == JsonToken.FIELD_NAME) {
                boolean wanted = "event_time".equals(parser.currentName());
                JsonToken value = parser.nextToken();
                if (wanted) {
                    Long millis = ParseClickEvent.eventTimeOf(parser, value);
                    // A number cut off by the end of the payload is no event time.
                    JsonToken next = millis == null ? null : parser.nextToken();
                    boolean ended = next == JsonToken.FIELD_NAME || next == JsonToken.END_OBJECT;
                    return ended ? millis : null;
                }
                if (value.isStructStart() && !JsonLimits.skipContainer(parser, 2)) {
                    return null;
                }
            }
            return null;
        } catch (IOException | RuntimeException notJson) {
            return null;
        }
    }
}
