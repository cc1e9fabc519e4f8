-- Console accounts (issue #8). A user's name is a login handle chosen by
-- the admin (e.g. "fp.gambella"), not a person's name; password_hash is an
-- encoded argon2id hash with its own salt and parameters, so they can be
-- raised later without a migration. Times are Unix microseconds, UTC.
CREATE TABLE console_user (
    name          TEXT    NOT NULL PRIMARY KEY,
    role          TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    language      TEXT    NOT NULL DEFAULT 'en',
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;

-- Console sessions. Only the SHA-256 of the cookie's random token is kept,
-- so a copy of the database does not let anyone log in.
CREATE TABLE console_session (
    token_hash TEXT    NOT NULL PRIMARY KEY,
    user_name  TEXT    NOT NULL REFERENCES console_user (name) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX console_session_user_idx ON console_session (user_name);
CREATE INDEX console_session_expiry_idx ON console_session (expires_at);
