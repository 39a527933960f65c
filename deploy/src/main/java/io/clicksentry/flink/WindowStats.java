package io.clicksentry.flink;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.api.dataview.MapView;
import org.apache.flink.table.functions.AggregateFunction;
import org.apache.flink.types.Row;

import java.util.Map;

/**
 * Every count of an entity window in one pass over its events: events per action, distinct
 * users, sessions and IPs, the busiest IP's events and the bot events — what
 * {@code window_counts_sql} in {@code flink_jobs/features.py} selects, with the semantics of
 * {@code COUNT(*) FILTER (WHERE action = ...)}, {@code COUNT(DISTINCT ...)} (a NULL is not
 * counted), {@code MAX} over a {@code GROUP BY ip} of {@code COUNT(*)} (NULL IPs are one group)
 * and {@code SUM(is_bot)}.
 *
 * <p>The seen users, sessions and IPs are {@link MapView}s: the job's state backend holds them
 * entry by entry, so an event reads and writes three entries, never the whole window. The
 * busiest IP's count is kept as the events arrive (counts only grow), so nothing iterates the
 * IPs but {@link #merge}.
 *
 * <pre>{@code
 * CREATE TEMPORARY SYSTEM FUNCTION window_stats AS 'io.clicksentry.flink.WindowStats'
 *   LANGUAGE JAVA;
 * SELECT window_start, window_end, page, window_stats(action, user_id, session_id, ip, is_bot)
 *   FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '10' SECOND))
 *   GROUP BY window_start, window_end, page;
 * }</pre>
 */
@FunctionHint(
        output = @DataTypeHint(
                "ROW<events BIGINT NOT NULL, impressions BIGINT NOT NULL, clicks BIGINT NOT NULL,"
                        + " page_views BIGINT NOT NULL, add_to_carts BIGINT NOT NULL,"
                        + " purchases BIGINT NOT NULL, unique_users BIGINT NOT NULL,"
                        + " unique_sessions BIGINT NOT NULL, unique_ips BIGINT NOT NULL,"
                        + " top_ip_events BIGINT NOT NULL, bot_events BIGINT NOT NULL>"))
public class WindowStats extends AggregateFunction<Row, WindowStats.Accumulator> {

    private static final long serialVersionUID = 1L;

    /** One window's counts so far. */
    public static class Accumulator {
        public long events;
        public long impressions;
        public long clicks;
        public long pageViews;
        public long addToCarts;
        public long purchases;
        public long botEvents;
        public long uniqueUsers;
        public long uniqueSessions;
        public long uniqueIps;
        public long topIpEvents;
        /** Events without an IP: one group of their own, as in {@code GROUP BY ip}. */
        public long nullIpEvents;
        public MapView<String, Boolean> users = new MapView<>();
        public MapView<String, Boolean> sessions = new MapView<>();
        public MapView<String, Long> ipEvents = new MapView<>();
    }

    @Override
    public Accumulator createAccumulator() {
        return new Accumulator();
    }

    /** Counts one event. */
    public void accumulate(Accumulator acc, String action, String userId, String sessionId,
                           String ip, Integer isBot) throws Exception {
        acc.events++;
        if (action != null) {
            switch (action) {
                case "impression": acc.impressions++; break;
                case "click": acc.clicks++; break;
                case "page_view": acc.pageViews++; break;
                case "add_to_cart": acc.addToCarts++; break;
                case "purchase": acc.purchases++; break;
                default: break;
            }
        }
        if (isBot != null) {
            acc.botEvents += isBot;
        }
        if (userId != null && !acc.users.contains(userId)) {
            acc.users.put(userId, Boolean.TRUE);
            acc.uniqueUsers++;
        }
        if (sessionId != null && !acc.sessions.contains(sessionId)) {
            acc.sessions.put(sessionId, Boolean.TRUE);
            acc.uniqueSessions++;
        }
        long count;
        if (ip == null) {
            count = ++acc.nullIpEvents;
        } else {
            Long seen = acc.ipEvents.get(ip);
            if (seen == null) {
                acc.uniqueIps++;
            }
            count = seen == null ? 1 : seen + 1;
            acc.ipEvents.put(ip, count);
        }
        acc.topIpEvents = Math.max(acc.topIpEvents, count);
    }

    /** Adds other windows' counts (local-global aggregation). */
    public void merge(Accumulator acc, Iterable<Accumulator> others) throws Exception {
        for (Accumulator other : others) {
            acc.events += other.events;
            acc.impressions += other.impressions;
            acc.clicks += other.clicks;
            acc.pageViews += other.pageViews;
            acc.addToCarts += other.addToCarts;
            acc.purchases += other.purchases;
            acc.botEvents += other.botEvents;
            acc.nullIpEvents += other.nullIpEvents;
            acc.topIpEvents = Math.max(acc.topIpEvents, acc.nullIpEvents);
            for (String user : other.users.keys()) {
                if (!acc.users.contains(user)) {
                    acc.users.put(user, Boolean.TRUE);
                    acc.uniqueUsers++;
                }
            }
            for (String session : other.sessions.keys()) {
                if (!acc.sessions.contains(session)) {
                    acc.sessions.put(session, Boolean.TRUE);
                    acc.uniqueSessions++;
                }
            }
            for (Map.Entry<String, Long> entry : other.ipEvents.entries()) {
                Long seen = acc.ipEvents.get(entry.getKey());
                long count = (seen == null ? 0 : seen) + entry.getValue();
                acc.ipEvents.put(entry.getKey(), count);
                if (seen == null) {
                    acc.uniqueIps++;
                }
                acc.topIpEvents = Math.max(acc.topIpEvents, count);
            }
        }
    }

    @Override
    public Row getValue(Accumulator acc) {
        return Row.of(acc.events, acc.impressions, acc.clicks, acc.pageViews, acc.addToCarts,
                acc.purchases, acc.uniqueUsers, acc.uniqueSessions, acc.uniqueIps,
                acc.topIpEvents, acc.botEvents);
    }
}
