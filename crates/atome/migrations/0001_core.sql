-- Core tables: users, one-time codes, tokens, connection requests, rooms, invites.
-- Times are Unix milliseconds (INTEGER).

CREATE TABLE users (
    user_id      TEXT PRIMARY KEY,
    phone_e164   TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);

CREATE TABLE otp_codes (
    phone_e164  TEXT PRIMARY KEY,
    code_hash   TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);

CREATE TABLE tokens (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX tokens_user ON tokens(user_id);

CREATE TABLE connection_requests (
    request_id    TEXT PRIMARY KEY,
    from_user_id  TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    to_user_id    TEXT REFERENCES users(user_id) ON DELETE CASCADE,
    to_phone_e164 TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'rejected', 'blocked')),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (from_user_id, to_phone_e164)
);
CREATE INDEX connection_requests_to_user ON connection_requests(to_user_id);
CREATE INDEX connection_requests_to_phone ON connection_requests(to_phone_e164);

CREATE TABLE rooms (
    room_id       TEXT PRIMARY KEY,
    owner_user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    visibility    TEXT NOT NULL CHECK (visibility IN ('private', 'connections', 'public')),
    created_at    INTEGER NOT NULL
);
CREATE INDEX rooms_owner ON rooms(owner_user_id);

CREATE TABLE room_invites (
    room_id          TEXT NOT NULL REFERENCES rooms(room_id) ON DELETE CASCADE,
    invitee_phone    TEXT NOT NULL,
    invitee_user_id  TEXT REFERENCES users(user_id) ON DELETE CASCADE,
    invited_by       TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (room_id, invitee_phone)
);
CREATE INDEX room_invites_user ON room_invites(invitee_user_id);

-- Users who joined a room at least once.
CREATE TABLE room_members (
    room_id    TEXT NOT NULL REFERENCES rooms(room_id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    joined_at  INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
