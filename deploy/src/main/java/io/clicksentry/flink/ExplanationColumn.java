package io.clicksentry.flink;

import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.json.JsonReadFeature;
import org.apache.flink.types.Row;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Adds a scored window's {@code explanation} column, read from its anomaly record's JSON.
 *
 * <p>The scoring operator (Python) emits the record's JSON and its flat columns; this map, right
 * after it, inserts the explanation at position {@code explanationField} as the archive stores
 * it ({@code EXPLANATION_FIELDS} in {@code udfs/scored_window.py}): one row per feature of the
 * record's {@code explanation} object, in the record's order, of {@code feature},
 * {@code DIRECTION}, {@code STRENGTH}, {@code ATTRIBUTION_SCORE}, {@code value} and
 * {@code expected}. Built here, the array of rows never crosses from Python into Java, where
 * PyFlink 1.20's thread mode reuses one row for every element (FLINK-35180). Numbers are read
 * as Java parses their JSON text, which is the shortest text that gives Python's double back:
 * the same doubles.
 */
public class ExplanationColumn implements MapFunction<Row, Row> {

    private static final long serialVersionUID = 1L;
    /** Python's {@code json.dumps} writes a non-finite double as NaN or Infinity: read them. */
    private static final JsonFactory JSON =
            JsonFactory.builder().enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS).build();

    /** Where each number of a feature's entry goes in its row (the direction goes to 1). */
    private static final Map<String, Integer> NUMBER_FIELDS =
            Map.of("STRENGTH", 2, "ATTRIBUTION_SCORE", 3, "value", 4, "expected", 5);

    private final int recordField;
    private final int explanationField;

    /**
     * @param recordField position of the record's JSON in an input row
     * @param explanationField position of the explanation in an output row
     */
    public ExplanationColumn(int recordField, int explanationField) {
        this.recordField = recordField;
        this.explanationField = explanationField;
    }

    @Override
    public Row map(Row in) throws IOException {
        int arity = in.getArity();
        Row out = Row.withPositions(in.getKind(), arity + 1);
        for (int i = 0, o = 0; i < arity; i++, o++) {
            if (o == explanationField) {
                o++;
            }
            out.setField(o, in.getField(i));
        }
        out.setField(explanationField, explanation((String) in.getField(recordField)));
        return out;
    }

    /** The rows of the record's {@code explanation} object (none when it has none). */
    static Row[] explanation(String record) throws IOException {
        List<Row> rows = new ArrayList<>();
        try (JsonParser parser = JSON.createParser(record)) {
            expect(parser.nextToken(), JsonToken.START_OBJECT);
            while (parser.nextToken() == JsonToken.FIELD_NAME) {
                String name = parser.getCurrentName();
                JsonToken value = parser.nextToken();
                if (!"explanation".equals(name) || value != JsonToken.START_OBJECT) {
                    parser.skipChildren();
                    continue;
                }
                while (parser.nextToken() == JsonToken.FIELD_NAME) {
                    String feature = parser.getCurrentName();
                    expect(parser.nextToken(), JsonToken.START_OBJECT);
                    rows.add(part(feature, parser));
                }
            }
        }
        return rows.toArray(new Row[0]);
    }

    /** One feature's entry, the parser inside its object. */
    private static Row part(String feature, JsonParser parser) throws IOException {
        Row row = Row.withPositions(6);
        row.setField(0, feature);
        while (parser.nextToken() == JsonToken.FIELD_NAME) {
            String key = parser.getCurrentName();
            JsonToken token = parser.nextToken();
            Integer number = NUMBER_FIELDS.get(key);
            if ("DIRECTION".equals(key)) {
                row.setField(1, parser.getText());
            } else if (number != null) {
                row.setField(number, number(token, parser));
            } else {
                parser.skipChildren();
            }
        }
        return row;
    }

    private static Double number(JsonToken token, JsonParser parser) throws IOException {
        return token == JsonToken.VALUE_NULL ? null : parser.getDoubleValue();
    }

    private static void expect(JsonToken actual, JsonToken expected) throws IOException {
        if (actual != expected) {
            throw new IOException("anomaly record: expected " + expected + ", got " + actual);
        }
    }
}
