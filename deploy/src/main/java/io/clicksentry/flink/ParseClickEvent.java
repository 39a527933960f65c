package io.clicksentry.flink;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;
import org.apache.flink.metrics.Counter;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;
import org.apache.flink.types.Row;

import java.io.IOException;

/**
 * Parses a raw click-event payload once and returns every typed field plus the dead-letter
 * reason, with the semantics of {@code flink_jobs/events.py} ({@code fields_sql()} and the
 * validation part of {@code reason_sql()}) and the README's "Click event schema".
 *
 * <p>Reason, first that applies: {@code payload_too_large} (more than
 * {@link JsonLimits#MAX_PAYLOAD_CHARS} characters, decided before parsing), {@code bad_json}
 * (NULL, invalid JSON, not an object, trailing content), {@code too_deep} (a value nesting
 * objects or arrays deeper than {@link JsonLimits#MAX_DEPTH}), {@code missing_field:<name>} for
 * a required field absent or {@code null}, {@code bad_type:<name>} (a string field holding an
 * object or array; an {@code event_time} that is neither an integer number nor a string of an
 * integer within BIGINT), {@code too_long:<name>} (a string field longer than its limit,
 * {@link #MAX_ID_CHARS} or {@link #MAX_TEXT_CHARS}), {@code bad_value:<name>} (an entity id —
 * {@code page}, {@code campaign}, {@code ad_id} — holding a control character or U+FFFD),
 * {@code bad_action}, {@code missing_field:ad_id} / {@code missing_field:campaign} for
 * impressions and clicks, else NULL. A string field holding a number or boolean gives its JSON
 * text, as {@code JSON_VALUE} does. Duplicate keys: the last one wins. Fields are NULL where
 * unusable; all NULL on payload_too_large, bad_json and too_deep.
 *
 * <p>Work per payload is linear in its length: no number is converted to a BigInteger or
 * BigDecimal, nesting is skipped iteratively.
 *
 * <pre>{@code
 * CREATE TEMPORARY SYSTEM FUNCTION parse_click AS 'io.clicksentry.flink.ParseClickEvent'
 *   LANGUAGE JAVA;
 * SELECT e.* FROM (SELECT parse_click(payload) AS e FROM clicks);
 * }</pre>
 */
public class ParseClickEvent extends ScalarFunction {

    private static final long serialVersionUID = 1L;

    // Field indexes, in declaration order (FIELDS in flink_jobs/events.py).
    static final int EVENT_ID = 0;
    static final int EVENT_TIME = 1;
    static final int USER_ID = 2;
    static final int SESSION_ID = 3;
    static final int IP = 4;
    static final int USER_AGENT = 5;
    static final int PAGE = 6;
    static final int CAMPAIGN = 7;
    static final int AD_ID = 8;
    static final int ACTION = 9;
    static final int REFERRER = 10;
    private static final int FIELD_COUNT = 11;

    /** Longest id or action, in characters: ids become keyed state and alert text. */
    static final int MAX_ID_CHARS = 256;
    /** Longest free text ({@code user_agent}, {@code referrer}), in characters. */
    static final int MAX_TEXT_CHARS = 4096;

    private static final String[] NAMES = {
        "event_id", "event_time", "user_id", "session_id", "ip", "user_agent", "page",
        "campaign", "ad_id", "action", "referrer"
    };
    private static final int[] REQUIRED = {EVENT_ID, EVENT_TIME, USER_ID, IP, PAGE, ACTION};
    /** Fields that name an entity (keyed state, alerts): no control characters allowed. */
    private static final int[] ENTITY_IDS = {PAGE, CAMPAIGN, AD_ID};
    private static final String[] MISSING = reasons("missing_field:");
    private static final String[] BAD_TYPE = reasons("bad_type:");
    private static final String[] TOO_LONG = reasons("too_long:");
    private static final String[] BAD_VALUE = reasons("bad_value:");

    /** Every payload parsed: the counter {@code eventsIn} ({@link Metrics}). */
    private transient Counter eventsIn;

    static final String PAYLOAD_TOO_LARGE = "payload_too_large";
    static final String BAD_JSON = "bad_json";
    static final String TOO_DEEP = "too_deep";

    public @DataTypeHint(
            "ROW<event_id STRING, event_time BIGINT, user_id STRING, session_id STRING,"
                    + " ip STRING, user_agent STRING, page STRING, campaign STRING,"
                    + " ad_id STRING, action STRING, referrer STRING, reason STRING>")
    Row eval(String payload) {
        if (eventsIn != null) {
            eventsIn.inc();
        }
        Row row = new Row(FIELD_COUNT + 1);
        Fields fields = new Fields();
        String reason;
        if (payload == null) {
            reason = BAD_JSON;
        } else if (JsonLimits.tooLarge(payload)) {
            reason = PAYLOAD_TOO_LARGE;
        } else {
            reason = fields.read(payload);
        }
        if (reason == null) {
            fields.copyTo(row);
            reason = fields.reason();
        }
        row.setField(FIELD_COUNT, reason);
        return row;
    }

    /** The fields of one payload as read (the last occurrence of a key wins). */
    @Override
    public void open(FunctionContext context) {
        eventsIn = Metrics.of(context.getMetricGroup()).counter("eventsIn");
    }

    private static final class Fields {
        // What a field held.
        private static final byte ABSENT = 0; // key absent or value null
        private static final byte VALUE = 1; // usable value
        private static final byte WRONG = 2; // present with the wrong type

        private final byte[] state = new byte[FIELD_COUNT];
        private final String[] text = new String[FIELD_COUNT];
        private long eventTime;

        /** Reads the payload's object: null, or bad_json / too_deep for its structure. */
        String read(String payload) {
            try (JsonParser parser = JsonLimits.JSON.createParser(payload)) {
                if (parser.nextToken() != JsonToken.START_OBJECT) {
                    return BAD_JSON;
                }
                JsonToken token;
                while ((token = parser.nextToken()) == JsonToken.FIELD_NAME) {
                    int field = fieldIndex(parser.currentName());
                    JsonToken value = parser.nextToken();
                    if (field >= 0) {
                        store(field, parser, value);
                    }
                    if (value.isStructStart() && !JsonLimits.skipContainer(parser, 2)) {
                        return TOO_DEEP;
                    }
                }
                // END_OBJECT, then nothing but whitespace up to the end of the payload.
                boolean alone = token == JsonToken.END_OBJECT && parser.nextToken() == null;
                return alone ? null : BAD_JSON;
            } catch (IOException | RuntimeException notJson) {
                return BAD_JSON;
            }
        }

        private void store(int field, JsonParser parser, JsonToken value) throws IOException {
            if (value == JsonToken.VALUE_NULL) {
                state[field] = ABSENT;
                text[field] = null;
            } else if (field == EVENT_TIME) {
                Long millis = eventTimeOf(parser, value);
                state[field] = millis == null ? WRONG : VALUE;
                eventTime = millis == null ? 0L : millis;
            } else {
                text[field] = scalarText(parser, value);
                state[field] = text[field] == null ? WRONG : VALUE;
            }
        }

        void copyTo(Row row) {
            for (int i = 0; i < FIELD_COUNT; i++) {
                if (state[i] == VALUE) {
                    row.setField(i, i == EVENT_TIME ? (Object) eventTime : text[i]);
                }
            }
        }

        /** The first thing wrong with the fields, or null. */
        String reason() {
            for (int field : REQUIRED) {
                if (state[field] == ABSENT) {
                    return MISSING[field];
                }
            }
            for (int field = 0; field < FIELD_COUNT; field++) {
                if (state[field] == WRONG) {
                    return BAD_TYPE[field];
                }
            }
            for (int field = 0; field < FIELD_COUNT; field++) {
                if (text[field] != null && JsonLimits.longerThan(text[field], maxChars(field))) {
                    return TOO_LONG[field];
                }
            }
            for (int field : ENTITY_IDS) {
                if (text[field] != null && hasForbiddenChar(text[field])) {
                    return BAD_VALUE[field];
                }
            }
            return actionReason();
        }

        private String actionReason() {
            String action = text[ACTION];
            boolean adAction = "impression".equals(action) || "click".equals(action);
            if (!adAction
                    && !"page_view".equals(action)
                    && !"add_to_cart".equals(action)
                    && !"purchase".equals(action)) {
                return "bad_action";
            }
            if (adAction && state[AD_ID] != VALUE) {
                return MISSING[AD_ID];
            }
            if (adAction && state[CAMPAIGN] != VALUE) {
                return MISSING[CAMPAIGN];
            }
            return null;
        }
    }

    private static String[] reasons(String prefix) {
        String[] reasons = new String[FIELD_COUNT];
        for (int i = 0; i < FIELD_COUNT; i++) {
            reasons[i] = prefix + NAMES[i];
        }
        return reasons;
    }

    static int fieldIndex(String name) {
        switch (name) {
            case "event_id": return EVENT_ID;
            case "event_time": return EVENT_TIME;
            case "user_id": return USER_ID;
            case "session_id": return SESSION_ID;
            case "ip": return IP;
            case "user_agent": return USER_AGENT;
            case "page": return PAGE;
            case "campaign": return CAMPAIGN;
            case "ad_id": return AD_ID;
            case "action": return ACTION;
            case "referrer": return REFERRER;
            default: return -1;
        }
    }

    /** The most characters a string field may hold. */
    static int maxChars(int field) {
        return field == USER_AGENT || field == REFERRER ? MAX_TEXT_CHARS : MAX_ID_CHARS;
    }

    /**
     * Whether an entity id holds a control character (U+0000–U+001F, U+007F–U+009F) or U+FFFD,
     * which the source's UTF-8 decoding puts where the bytes were not valid UTF-8.
     */
    static boolean hasForbiddenChar(String text) {
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (Character.isISOControl(c) || c == '\uFFFD') {
                return true;
            }
        }
        return false;
    }

    /**
     * The text {@code JSON_VALUE} gives a scalar (a string's value, a number's or boolean's JSON
     * text as Jackson renders the parsed value), or null for an object or array.
     */
    static String scalarText(JsonParser parser, JsonToken value) throws IOException {
        switch (value) {
            case VALUE_STRING:
                return parser.getText();
            case VALUE_NUMBER_INT:
                return integerText(parser.getText());
            case VALUE_NUMBER_FLOAT:
                // Double.parseDouble reads at most ~1100 significant digits: linear in the text.
                return Double.toString(parser.getDoubleValue());
            case VALUE_TRUE:
                return "true";
            case VALUE_FALSE:
                return "false";
            default:
                return null;
        }
    }

    /**
     * An integer number as Jackson renders its value: a long's decimal, else (a BigInteger's)
     * the JSON text itself, which has no leading zeros or plus sign. Never parsed as a
     * BigInteger, whose construction is quadratic in the number of digits.
     */
    static String integerText(String json) {
        Long value = parseLong(json);
        return value == null ? json : value.toString();
    }

    /**
     * The event time in a value: an integer number within BIGINT, or a string whose whole text
     * is an optional sign and ASCII digits within BIGINT; null for anything else.
     */
    static Long eventTimeOf(JsonParser parser, JsonToken value) throws IOException {
        boolean integral = value == JsonToken.VALUE_NUMBER_INT || value == JsonToken.VALUE_STRING;
        return integral ? parseLong(parser.getText()) : null;
    }

    /**
     * Optional sign then ASCII digits, within BIGINT; null otherwise. Stops at the first
     * character that is not a digit or the first digit that overflows.
     */
    static Long parseLong(String s) {
        int n = s.length();
        int i = 0;
        boolean negative = false;
        if (n > 0 && (s.charAt(0) == '-' || s.charAt(0) == '+')) {
            negative = s.charAt(0) == '-';
            i = 1;
        }
        if (i == n) {
            return null;
        }
        // Accumulate negatively so that Long.MIN_VALUE fits.
        long result = 0;
        for (; i < n; i++) {
            char c = s.charAt(i);
            if (c < '0' || c > '9') {
                return null;
            }
            int digit = c - '0';
            if (result < Long.MIN_VALUE / 10) {
                return null;
            }
            result *= 10;
            if (result < Long.MIN_VALUE + digit) {
                return null;
            }
            result -= digit;
        }
        if (negative) {
            return result;
        }
        return result == Long.MIN_VALUE ? null : -result;
    }
}
