package io.clicksentry.flink;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;

import java.io.EOFException;
import java.io.IOException;

/**
 * The bounds that keep one payload's parse cheap, whatever its content. The Jackson of the
 * Flink runtime (2.14) has no read limits of its own, so {@link ParseClickEvent} and
 * {@link EventTimeOf} check these: the payload's length before parsing, the nesting depth while
 * skipping values. Both are stated again in {@code flink_jobs/events.py}.
 */
final class JsonLimits {

    /** Longest payload parsed, in characters (code points); longer is {@code payload_too_large}. */
    static final int MAX_PAYLOAD_CHARS = 65_536;

    /** Most containers open at once, the payload's own object included; more is too deep. */
    static final int MAX_DEPTH = 32;

    /**
     * Thread-safe and reusable; parsers it creates recycle their buffers. Field names are not
     * canonicalized, so no symbol table is shared between records (nor filled by their keys).
     */
    static final JsonFactory JSON =
            JsonFactory.builder().disable(JsonFactory.Feature.CANONICALIZE_FIELD_NAMES).build();

    private JsonLimits() {}

    /** Whether {@code text} has more than {@code max} code points. */
    static boolean longerThan(String text, int max) {
        return text.length() > max && text.codePointCount(0, text.length()) > max;
    }

    /** Whether a payload is too long to parse. */
    static boolean tooLarge(String payload) {
        return longerThan(payload, MAX_PAYLOAD_CHARS);
    }

    /**
     * Skips the object or array the parser has just opened at nesting {@code depth} (2 for a
     * value of the payload's object), one token at a time: no recursion, no value materialised.
     * Returns false as soon as it opens a container deeper than {@link #MAX_DEPTH}; the parser
     * is then left inside the value.
     */
    static boolean skipContainer(JsonParser parser, int depth) throws IOException {
        int open = depth;
        if (open > MAX_DEPTH) {
            return false;
        }
        while (open >= depth) {
            JsonToken token = parser.nextToken();
            if (token == null) {
                throw new EOFException("payload ends inside a value");
            }
            if (token.isStructStart() && ++open > MAX_DEPTH) {
                return false;
            }
            if (token.isStructEnd()) {
                open--;
            }
        }
        return true;
    }
}
