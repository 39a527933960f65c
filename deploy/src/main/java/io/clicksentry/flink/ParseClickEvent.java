package io.clicksentry.flink;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;
import org.apache.flink.types.Row;

import java.io.IOException;

/**
 * Parses a raw click-event payload once and returns every typed field plus the dead-letter
 * reason, with the semantics of {@code flink_jobs/events.py} ({@code fields_sql()} and the
 * validation part of {@code reason_sql()}) and the README's "Click event schema".
 *
 * <p>Reason, first that applies: {@code bad_json} (NULL, invalid JSON, not an object, trailing
 * content), {@code missing_field:<name>} for a required field absent or {@code null},
 * {@code bad_type:<name>} (a string field holding an object or array; an {@code event_time} that
 * is neither an integer number nor a string of an integer), {@code bad_action},
 * {@code missing_field:ad_id} / {@code missing_field:campaign} for impressions and clicks, else
 * NULL. A string field holding a number or boolean gives its JSON text, as {@code JSON_VALUE}
 * does. Duplicate keys: the last one wins. Fields are NULL where unusable; all NULL on bad_json.
 *
 * <pre>{@code
 * CREATE TEMPORARY SYSTEM FUNCTION parse_click AS 'io.clicksentry.flink.ParseClickEvent'
 *   LANGUAGE JAVA;
 * SELECT e.* FROM (SELECT parse_click(payload) AS e FROM clicks);
 * }</pre>
 */
public class ParseClickEvent extends ScalarFunction {

    private static final long serialVersionUID = 1L;

    /** Thread-safe and reusable; parsers it creates recycle their buffers. */
    static final JsonFactory JSON = new JsonFactory();

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

    private static final String[] NAMES = {
        "event_id", "event_time", "user_id", "session_id", "ip", "user_agent", "page",
        "campaign", "ad_id", "action", "referrer"
    };
    private static final int[] REQUIRED = {EVENT_ID, EVENT_TIME, USER_ID, IP, PAGE, ACTION};
    private static final String[] MISSING = new String[FIELD_COUNT];
    private static final String[] BAD_TYPE = new String[FIELD_COUNT];

    static {
        for (int i = 0; i < FIELD_COUNT; i++) {
            MISSING[i] = "missing_field:" + NAMES[i];
            BAD_TYPE[i] = "bad_type:" + NAMES[i];
        }
    }

    // What a field held (the last occurrence of its key wins).
    private static final byte ABSENT = 0; // key absent or value null
    private static final byte VALUE = 1; // usable value
    private static final byte WRONG = 2; // present with the wrong type

    public @DataTypeHint(
            "ROW<event_id STRING, event_time BIGINT, user_id STRING, session_id STRING,"
                    + " ip STRING, user_agent STRING, page STRING, campaign STRING,"
                    + " ad_id STRING, action STRING, referrer STRING, reason STRING>")
    Row eval(String payload) {
        Row row = new Row(FIELD_COUNT + 1);
        if (payload == null) {
            row.setField(FIELD_COUNT, "bad_json");
            return row;
        }
        byte[] state = new byte[FIELD_COUNT];
        String[] text = new String[FIELD_COUNT];
        long eventTime = 0L;
        try (JsonParser parser = JSON.createParser(payload)) {
            if (parser.nextToken() != JsonToken.START_OBJECT) {
                row.setField(FIELD_COUNT, "bad_json");
                return row;
            }
            JsonToken token;
            while ((token = parser.nextToken()) == JsonToken.FIELD_NAME) {
                int field = fieldIndex(parser.currentName());
                JsonToken value = parser.nextToken();
                if (field < 0) {
                    parser.skipChildren();
                } else if (value == JsonToken.VALUE_NULL) {
                    state[field] = ABSENT;
                } else if (field == EVENT_TIME) {
                    Long millis = eventTimeOf(parser, value);
                    parser.skipChildren();
                    state[field] = millis == null ? WRONG : VALUE;
                    eventTime = millis == null ? 0L : millis;
                } else {
                    text[field] = scalarText(parser, value);
                    parser.skipChildren();
                    state[field] = text[field] == null ? WRONG : VALUE;
                }
            }
            // END_OBJECT, then nothing but whitespace up to the end of the payload.
            if (token != JsonToken.END_OBJECT || parser.nextToken() != null) {
                row.setField(FIELD_COUNT, "bad_json");
                return row;
            }
        } catch (IOException | RuntimeException notJson) {
            row.setField(FIELD_COUNT, "bad_json");
            return row;
        }
        for (int i = 0; i < FIELD_COUNT; i++) {
            if (state[i] == VALUE) {
                row.setField(i, i == EVENT_TIME ? (Object) eventTime : text[i]);
            }
        }
        row.setField(FIELD_COUNT, reason(state, text));
        return row;
    }

    private static String reason(byte[] state, String[] text) {
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

    /**
     * The text {@code JSON_VALUE} gives a scalar (a string's value, a number's or boolean's JSON
     * text as Jackson renders the parsed value), or null for an object or array.
     */
    static String scalarText(JsonParser parser, JsonToken value) throws IOException {
        switch (value) {
            case VALUE_STRING:
                return parser.getText();
            case VALUE_NUMBER_INT:
                if (parser.getNumberType() == JsonParser.NumberType.BIG_INTEGER) {
                    return parser.getBigIntegerValue().toString();
                }
                return Long.toString(parser.getLongValue());
            case VALUE_NUMBER_FLOAT:
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
     * The event time in a value: an integer number within BIGINT, or a string whose whole text
     * is an optional sign and ASCII digits within BIGINT; null for anything else.
     */
    static Long eventTimeOf(JsonParser parser, JsonToken value) throws IOException {
        if (value == JsonToken.VALUE_NUMBER_INT) {
            JsonParser.NumberType type = parser.getNumberType();
            return type == JsonParser.NumberType.BIG_INTEGER ? null : parser.getLongValue();
        }
        if (value == JsonToken.VALUE_STRING) {
            return parseLong(parser.getText());
        }
        return null;
    }

    /** Optional sign then ASCII digits, within BIGINT; null otherwise. */
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
