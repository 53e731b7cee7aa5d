-- Idempotent writes: the Idempotency-Key a report arrived with, per token principal, and the
-- answer it got, written in the same transaction as the report. A repeat of the key with the
-- same request within --idempotency-window is answered from here and writes nothing; a key
-- older than the window is forgotten (the writer deletes such rows, and a new request with
-- the key replaces its row).
CREATE TABLE idempotency_keys (
    -- The token's name; '' when the server runs without tokens.
    principal   TEXT    NOT NULL,
    key         TEXT    NOT NULL CHECK (length(key) BETWEEN 1 AND 255
                                        AND key NOT GLOB '*[^!-~]*'),
    -- SHA-256 (hex) of the method, the path and the body as received.
    fingerprint TEXT    NOT NULL CHECK (length(fingerprint) = 64),
    report_id   INTEGER NOT NULL,
    -- The answer: HTTP status and JSON body.
    status      INTEGER NOT NULL CHECK (status BETWEEN 200 AND 299),
    body        TEXT    NOT NULL CHECK (json_valid(body)),
    created_at  TEXT    NOT NULL,
    PRIMARY KEY (principal, key)
) STRICT, WITHOUT ROWID;

CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
