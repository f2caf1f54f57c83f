-- 0020: the invalidation log of the lookup caches (tecken_symbols.invalidations).
-- The symbol writer appends the cache keys it makes stale; every worker reads
-- the rows past the last id it has seen and drops those keys from its
-- in-process cache. Rows older than a day are pruned by the writers.

CREATE TABLE cache_invalidations (
    id {{pk}},
    cache_key TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX cache_invalidations_created_at ON cache_invalidations (created_at);

-- One row, updated first by every append: it serialises appenders, so ids
-- become visible in id order and a reader never skips a row committed late.
CREATE TABLE cache_invalidation_appends (
    id INTEGER PRIMARY KEY,
    appended BIGINT NOT NULL
);

INSERT INTO cache_invalidation_appends (id, appended) VALUES (1, 0);
