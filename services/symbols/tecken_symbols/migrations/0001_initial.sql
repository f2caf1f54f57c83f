-- 0001: accounts, tokens, upload records and missing symbols.
-- Portable SQL for SQLite and PostgreSQL; {{pk}} is an auto-increment id.
-- Timestamps are TIMESTAMPTZ (UTC); list columns (skipped_keys, ignored_keys,
-- redirect_urls) hold JSON text; booleans read back as 0/1 on SQLite.

CREATE TABLE users (
    id {{pk}},
    email TEXT NOT NULL UNIQUE,
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    is_superuser BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL,
    last_login TIMESTAMPTZ
);

CREATE TABLE permissions (
    codename TEXT PRIMARY KEY,
    name TEXT NOT NULL
);

INSERT INTO permissions (codename, name) VALUES
    ('upload_symbols', 'Upload Symbols Files'),
    ('upload_try_symbols', 'Upload Try Symbols Files'),
    ('view_all_uploads', 'View All Symbols Uploads'),
    ('manage_tokens', 'Manage Your API Tokens'),
    ('manage_users', 'Administer Users and Groups');

CREATE TABLE groups (
    id {{pk}},
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE group_permissions (
    group_id BIGINT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    permission TEXT NOT NULL REFERENCES permissions (codename) ON DELETE CASCADE,
    PRIMARY KEY (group_id, permission)
);

INSERT INTO groups (name) VALUES ('Uploaders'), ('Upload Auditors');

INSERT INTO group_permissions (group_id, permission)
    SELECT g.id, p.codename FROM groups g, permissions p
    WHERE (g.name = 'Uploaders' AND p.codename IN ('upload_symbols', 'upload_try_symbols', 'manage_tokens'))
       OR (g.name = 'Upload Auditors' AND p.codename IN ('view_all_uploads', 'manage_tokens'));

CREATE TABLE user_groups (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_id BIGINT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, group_id)
);

CREATE TABLE user_permissions (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    permission TEXT NOT NULL REFERENCES permissions (codename) ON DELETE CASCADE,
    PRIMARY KEY (user_id, permission)
);

-- The key itself is never stored: key_hash is the SHA-256 hex of the 32-hex key,
-- key_prefix its first 8 characters (to tell tokens apart in listings).
CREATE TABLE tokens (
    id {{pk}},
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key_hash TEXT NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    notes TEXT NOT NULL DEFAULT '',
    preferred_upload_api_version INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ
);

CREATE INDEX tokens_user_id ON tokens (user_id);

CREATE TABLE token_permissions (
    token_id BIGINT NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    permission TEXT NOT NULL REFERENCES permissions (codename) ON DELETE CASCADE,
    PRIMARY KEY (token_id, permission)
);

-- One row per upload request (v1 zip, upload by URL, v2).
-- bucket_name: the name of the storage backend written to (its URL without
-- credentials/query), try_symbols: written to try storage.
CREATE TABLE uploads (
    id {{pk}},
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    filename TEXT NOT NULL DEFAULT '',
    bucket_name TEXT NOT NULL DEFAULT '',
    bucket_endpoint_url TEXT,
    size BIGINT NOT NULL DEFAULT 0,
    skipped_keys TEXT,
    ignored_keys TEXT,
    try_symbols BOOLEAN NOT NULL DEFAULT FALSE,
    content_hash TEXT,
    download_url TEXT,
    redirect_urls TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ
);

CREATE INDEX uploads_created_at ON uploads (created_at);
CREATE INDEX uploads_user_id ON uploads (user_id);

-- One row per stored file. is_update: an object already existed under the key.
-- size: the stored size (gzip size for compressed files).
CREATE TABLE file_uploads (
    id {{pk}},
    upload_id BIGINT REFERENCES uploads (id) ON DELETE SET NULL,
    bucket_name TEXT NOT NULL DEFAULT '',
    key TEXT NOT NULL,
    is_update BOOLEAN NOT NULL DEFAULT FALSE,
    compressed BOOLEAN NOT NULL DEFAULT FALSE,
    size BIGINT NOT NULL DEFAULT 0,
    try_symbols BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ,
    debug_filename TEXT,
    debug_id TEXT,
    code_file TEXT,
    code_id TEXT,
    generator TEXT
);

CREATE INDEX file_uploads_created_at ON file_uploads (created_at);
CREATE INDEX file_uploads_upload_id ON file_uploads (upload_id);
CREATE INDEX file_uploads_key ON file_uploads (key);
CREATE INDEX file_uploads_debug ON file_uploads (debug_filename, debug_id) WHERE debug_filename IS NOT NULL;
CREATE INDEX file_uploads_code ON file_uploads (code_file, code_id) WHERE code_file IS NOT NULL;

-- Downloads answered 404 (GET only). code_file/code_id are '' when not given.
CREATE TABLE missing_symbols (
    id {{pk}},
    debug_file TEXT NOT NULL,
    debug_id TEXT NOT NULL,
    symbols_file TEXT NOT NULL,
    code_file TEXT NOT NULL DEFAULT '',
    code_id TEXT NOT NULL DEFAULT '',
    count BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL,
    modified_at TIMESTAMPTZ NOT NULL,
    UNIQUE (debug_file, debug_id, symbols_file, code_file, code_id)
);

CREATE INDEX missing_symbols_modified_at ON missing_symbols (modified_at);
