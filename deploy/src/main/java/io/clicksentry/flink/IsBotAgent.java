package io.clicksentry.flink;

import org.apache.flink.table.functions.ScalarFunction;

import java.util.Locale;

/**
 * 1 when a user agent, lower-cased, contains any of the given words, else 0 (also for NULL):
 * {@code REGEXP(LOWER(COALESCE(user_agent, '')), 'w1|w2|...')} for words without regular
 * expression syntax, without a regular expression. The words come from the query
 * ({@code BOT_AGENT_WORDS} in {@code flink_jobs/events.py}), split on {@code |} once.
 *
 * <pre>{@code
 * CREATE TEMPORARY SYSTEM FUNCTION is_bot_agent AS 'io.clicksentry.flink.IsBotAgent'
 *   LANGUAGE JAVA;
 * SELECT is_bot_agent(user_agent, 'bot|crawl|spider') FROM valid_events;
 * }</pre>
 */
public class IsBotAgent extends ScalarFunction {

    private static final long serialVersionUID = 1L;

    private transient String wordList;
    private transient String[] words;

    /** 1 when {@code userAgent} lower-cased contains one of the {@code |}-separated words. */
    public int eval(String userAgent, String wordList) {
        if (userAgent == null || wordList == null) {
            return 0;
        }
        if (!wordList.equals(this.wordList)) {
            this.words = wordList.split("\\|", -1);
            this.wordList = wordList;
        }
        String lower = userAgent.toLowerCase(Locale.ROOT);
        for (String word : words) {
            if (lower.contains(word)) {
                return 1;
            }
        }
        return 0;
    }
}
