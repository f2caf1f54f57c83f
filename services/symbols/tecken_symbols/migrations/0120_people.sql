-- 0120 (people, issue 12): browser logins. Local passwords (argon2 hashes),
-- OpenID Connect identities with their re-validation time, server-side
-- sessions, invitations, login attempts (rate limiting), the OIDC login
-- states of logins under way, and the audit log of user management.
ALTER TABLE users ADD COLUMN password_hash TEXT;
ALTER TABLE users ADD COLUMN oidc_issuer TEXT;
ALTER TABLE users ADD COLUMN oidc_subject TEXT;
ALTER TABLE users ADD COLUMN oidc_refresh_token TEXT;
ALTER TABLE users ADD COLUMN validated_at TIMESTAMPTZ;

-- The cookie holds the session key; only its SHA-256 is stored.
CREATE TABLE sessions (
    id {{pk}},
    key_hash TEXT NOT NULL UNIQUE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    method TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE invitations (
    id {{pk}},
    key_hash TEXT NOT NULL UNIQUE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at TIMESTAMPTZ
);

CREATE TABLE login_attempts (
    id {{pk}},
    email TEXT NOT NULL,
    remote_addr TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX login_attempts_created_at ON login_attempts (created_at);

CREATE TABLE oidc_states (
    state TEXT PRIMARY KEY,
    nonce TEXT NOT NULL,
    code_verifier TEXT NOT NULL,
    next_url TEXT NOT NULL DEFAULT '/',
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE audit_log (
    id {{pk}},
    actor_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    actor_email TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    details TEXT,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX audit_log_created_at ON audit_log (created_at);
