-- cross-postback schema v6: the statistics page's sign-in sessions. Never edit 0001 to 0005.
--
-- A session is made by signing in with an admin token; the browser keeps a random id in an
-- HttpOnly cookie and only its SHA-256 is stored here. token_id is the admin token signed in
-- with: every request joins it, so a revoked or expired token ends its sessions at once.
CREATE TABLE IF NOT EXISTS web_sessions (
    id_hash    bytea PRIMARY KEY CHECK (length(id_hash) = 32),
    token_id   bigint NOT NULL REFERENCES admin_tokens (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS web_sessions_token_id ON web_sessions (token_id);
CREATE INDEX IF NOT EXISTS web_sessions_expires_at ON web_sessions (expires_at);
