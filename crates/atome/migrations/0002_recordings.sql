-- One row per recorded file. `recording_id` groups the files of one record/start.
CREATE TABLE recordings (
    id            TEXT PRIMARY KEY,
    recording_id  TEXT NOT NULL,
    room_id       TEXT NOT NULL REFERENCES rooms(room_id) ON DELETE CASCADE,
    owner_user_id TEXT NOT NULL,
    producer_id   TEXT NOT NULL,
    peer_user_id  TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('audio', 'video')),
    mode          TEXT NOT NULL CHECK (mode IN ('singleProducer', 'perProducer')),
    path          TEXT,
    sha256        TEXT,
    bytes         INTEGER,
    mime          TEXT,
    duration_ms   INTEGER,
    started_at    INTEGER NOT NULL,
    stopped_at    INTEGER,
    status        TEXT NOT NULL CHECK (status IN ('recording', 'done', 'failed')),
    error         TEXT
);
CREATE INDEX recordings_room ON recordings(room_id);
CREATE INDEX recordings_recording ON recordings(recording_id);
