-- Accounting daemon, first schema: one row per job record received from a working node.
-- The full SGE line is kept as received; the columns beside it are for queries and audits.
CREATE TABLE records (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    hostname         TEXT    NOT NULL,
    job_number       INTEGER NOT NULL,
    task_number      INTEGER NOT NULL,
    start_time       INTEGER NOT NULL,
    end_time         INTEGER NOT NULL,
    qname            TEXT    NOT NULL,
    owner            TEXT    NOT NULL,
    grp              TEXT    NOT NULL,
    job_name         TEXT    NOT NULL,
    account          TEXT    NOT NULL,
    failed           INTEGER NOT NULL,
    exit_status      INTEGER NOT NULL,
    ru_wallclock     REAL    NOT NULL,
    cpu              REAL    NOT NULL,
    mem              REAL    NOT NULL,
    io               REAL    NOT NULL,
    maxvmem          REAL    NOT NULL,
    line             TEXT    NOT NULL,
    received_at      REAL    NOT NULL,
    exported_at      REAL,
    UNIQUE (hostname, job_number, task_number, start_time)
);
CREATE INDEX records_owner ON records(owner);
CREATE INDEX records_end ON records(end_time);
