-- 0121 (people, issue 12): downloads found and missing per UTC day, for the
-- Stats page's chart. ``day`` counts days since 1970-01-01; workers add their
-- buffered counts with one upsert per day.
CREATE TABLE download_counts (
    day INTEGER PRIMARY KEY,
    found BIGINT NOT NULL DEFAULT 0,
    missing BIGINT NOT NULL DEFAULT 0
);
