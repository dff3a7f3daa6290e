-- One-time codes, reworked (issue 12). One row per phone number, kept after its code is spent so
-- that the number's guess budget spans codes:
--   code_hash           the live code's keyed hash, NULL once used or expired;
--   attempts            judgments of the live code, taken by the verify statement itself
--                       (`attempts = attempts + 1 ... WHERE attempts < 5`), never read-then-written;
--   guess_window_start  start (Unix ms) of the number's current one-hour guess window, and
--   guesses             the judgments in that window, whatever the code and the source.
-- Rows of the old table are dropped: codes live 5 minutes and their old hashes (unkeyed SHA-256)
-- are no longer accepted; whoever was logging in requests a new code.
DROP TABLE otp_codes;
CREATE TABLE otp_codes (
    phone_e164          TEXT PRIMARY KEY,
    code_hash           TEXT,
    expires_at          INTEGER NOT NULL,
    attempts            INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL,
    guess_window_start  INTEGER NOT NULL DEFAULT 0,
    guesses             INTEGER NOT NULL DEFAULT 0
);
