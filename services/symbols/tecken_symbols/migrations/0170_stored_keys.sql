-- 0170: every storage key an upload has stored (tecken_symbols.stored_keys).
-- The symbol writer adds a key in the transaction that records its file;
-- ``tecken-symbols-admin import-keys`` adds the objects of a bucket the
-- service never recorded. Downloads answer a key absent from this table 404
-- without asking storage (unless SYMBOLS_DOWNLOAD_ASK_STORAGE_FOR_UNKNOWN_KEYS).
-- Unlike file_uploads rows, these are not pruned by upload retention.

CREATE TABLE stored_keys (
    key TEXT PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL
);

INSERT INTO stored_keys (key, created_at)
SELECT key, MIN(created_at) FROM file_uploads GROUP BY key;
