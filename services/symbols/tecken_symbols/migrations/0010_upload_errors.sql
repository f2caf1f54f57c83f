-- 0010 (uploads): why an upload failed, and per stored file its original
-- (uncompressed) size and md5, which the v2 completion check compares against.
ALTER TABLE uploads ADD COLUMN error TEXT;
ALTER TABLE uploads ADD COLUMN upload_protocol TEXT;
ALTER TABLE file_uploads ADD COLUMN original_size BIGINT;
ALTER TABLE file_uploads ADD COLUMN md5_hash TEXT;
CREATE INDEX uploads_try_created_at ON uploads (try_symbols, created_at);
