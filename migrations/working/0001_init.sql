-- Working-node daemon, first schema: jobs configured on this node, their user tokens and the
-- containers they started. Times are seconds since the epoch (REAL).

-- One row per configure. job_key is "<job id>" or "<job id>.<task id>"; batch systems reuse
-- job ids eventually, so uniqueness holds only among jobs not yet cleaned.
CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    job_key         TEXT    NOT NULL,
    batch_job_id    TEXT    NOT NULL,
    task_id         TEXT,
    user            TEXT    NOT NULL,
    uid             INTEGER NOT NULL CHECK (uid > 0),
    gid             INTEGER NOT NULL CHECK (gid >= 0),
    home            TEXT    NOT NULL,
    spool_dir       TEXT,
    state           TEXT    NOT NULL DEFAULT 'configured'
                            CHECK (state IN ('configured', 'cleaned')),
    created_at      REAL    NOT NULL,
    cleaned_at      REAL
);
CREATE UNIQUE INDEX jobs_live_key ON jobs(job_key) WHERE state <> 'cleaned';

-- User tokens, stored only as the hex SHA-256 of the secret. The admin token is not here:
-- it is read from a root-only file.
CREATE TABLE tokens (
    hash        TEXT    PRIMARY KEY,
    job_id      INTEGER NOT NULL REFERENCES jobs(id),
    created_at  REAL    NOT NULL,
    revoked_at  REAL
);
CREATE INDEX tokens_job ON tokens(job_id);

-- Containers started through bdocker, recorded before they start so clean always finds them.
CREATE TABLE containers (
    id          TEXT    PRIMARY KEY,
    job_id      INTEGER NOT NULL REFERENCES jobs(id),
    image       TEXT    NOT NULL,
    created_at  REAL    NOT NULL,
    removed_at  REAL
);
CREATE INDEX containers_job ON containers(job_id);
