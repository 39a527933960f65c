package io.clicksentry.flink;

import org.apache.flink.connector.kinesis.sink.PartitionKeyGenerator;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.table.data.RowData;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

/**
 * Kinesis partition key of an anomaly record: {@code entity_type/entity_id} read from the JSON
 * document in the row's first column, so every record of one entity lands on one shard in order.
 *
 * <p>Used by the anomalies sink table ({@code 'sink.partitioner' = 'io.clicksentry.flink.
 * EntityPartitionKeyGenerator'}, {@code 'format' = 'raw'}): the record stays the whole payload,
 * which a {@code PARTITIONED BY} column would not allow with the raw format. A record without
 * the two fields (never written by the job) is keyed by the hex MD5 of its text.
 */
public class EntityPartitionKeyGenerator implements PartitionKeyGenerator<RowData> {

    private static final long serialVersionUID = 1L;
    private static final int MAX_KEY_LENGTH = 256;

    private transient ObjectMapper mapper;

    @Override
    public String apply(RowData row) {
        String record = row.isNullAt(0) ? "" : row.getString(0).toString();
        return keyOf(record);
    }

    /** The partition key of one JSON record. */
    public String keyOf(String record) {
        if (mapper == null) {
            mapper = new ObjectMapper();
        }
        try {
            JsonNode document = mapper.readTree(record);
            JsonNode type = document == null ? null : document.get("entity_type");
            JsonNode id = document == null ? null : document.get("entity_id");
            if (type != null && id != null && type.isTextual() && id.isTextual()) {
                String key = type.asText() + "/" + id.asText();
                if (!key.isEmpty() && key.length() <= MAX_KEY_LENGTH) {
                    return key;
                }
            }
        } catch (IOException notJson) {
            // fall through to the content hash
        }
        return md5(record);
    }

    private static String md5(String text) {
        try {
            byte[] digest =
                    MessageDigest.getInstance("MD5").digest(text.getBytes(StandardCharsets.UTF_8));
            StringBuilder hex = new StringBuilder();
            for (byte b : digest) {
                hex.append(String.format("%02x", b));
            }
            return hex.toString();
        } catch (NoSuchAlgorithmException impossible) {
            throw new IllegalStateException(impossible);
        }
    }
}
