-- Accounting daemon, first schema. See docs/accounting.md.

-- One row per job run received from a working node. `line` is the record as one canonical SGE
-- accounting line, exactly what goes into the accounting file; the columns beside it copy its
-- fields for queries and audits (`grp` is SGE's `group`, an SQL keyword). A row is written once
-- and only its append marker changes afterwards.
CREATE TABLE records (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,  -- order of receipt = order in the file
    hostname         TEXT    NOT NULL,
    job_number       INTEGER NOT NULL,
    task_number      INTEGER NOT NULL,
    start_time       INTEGER NOT NULL,
    submission_time  INTEGER NOT NULL,
    end_time         INTEGER NOT NULL,
    qname            TEXT    NOT NULL,
    owner            TEXT    NOT NULL,
    grp              TEXT    NOT NULL,
    job_name         TEXT    NOT NULL,
    account          TEXT    NOT NULL,
    project          TEXT    NOT NULL,
    department       TEXT    NOT NULL,
    granted_pe       TEXT    NOT NULL,
    slots            INTEGER NOT NULL,
    failed           INTEGER NOT NULL,
    exit_status      INTEGER NOT NULL,
    ru_wallclock     INTEGER NOT NULL,  -- seconds
    ru_utime         REAL    NOT NULL,  -- seconds
    ru_stime         REAL    NOT NULL,  -- seconds
    ru_maxrss        REAL    NOT NULL,  -- KB
    cpu              REAL    NOT NULL,  -- seconds
    mem              REAL    NOT NULL,  -- GB·s
    io               REAL    NOT NULL,  -- GB
    iow              REAL    NOT NULL,  -- seconds
    maxvmem          REAL    NOT NULL,  -- bytes
    line             TEXT    NOT NULL,
    received_at      REAL    NOT NULL,  -- epoch seconds
    -- Set in the transaction that confirms the line is durably in the accounting file.
    appended_at      REAL,
    file_offset      INTEGER,           -- where the line starts in the file it went to
    UNIQUE (hostname, job_number, task_number, start_time)
);
CREATE INDEX records_start ON records(start_time);
CREATE INDEX records_owner ON records(owner, start_time);
CREATE INDEX records_job ON records(job_number);
CREATE INDEX records_not_appended ON records(id) WHERE appended_at IS NULL;

-- The accounting file as far as it is confirmed: its first `end_offset` bytes are the header
-- and the lines of appended records, in id order, and end with the line of `last_record_id`
-- (or with the header when NULL: no record has gone into this file yet). One row, written by
-- the appender only.
CREATE TABLE accounting_file (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    path            TEXT    NOT NULL,
    end_offset      INTEGER NOT NULL,
    last_record_id  INTEGER REFERENCES records(id),
    started_at      REAL    NOT NULL   -- when this file was begun (a new file after rotation)
);

-- Views for audits (bdocker-acct sql "SELECT * FROM jobs_by_owner"). Sums are over all
-- records; add WHERE start_time >= strftime('%s', '2026-01-01') and so on to the query for a
-- period, or use `bdocker-acct summary --since/--until`.

-- Per owner: jobs, the qacct -o sums, the largest maxvmem, first start and last end.
CREATE VIEW jobs_by_owner AS
SELECT owner,
       COUNT(*)          AS jobs,
       SUM(ru_wallclock) AS wallclock,
       SUM(ru_utime)     AS utime,
       SUM(ru_stime)     AS stime,
       SUM(cpu)          AS cpu,
       SUM(mem)          AS mem,
       SUM(io)           AS io,
       SUM(iow)          AS iow,
       MAX(maxvmem)      AS maxvmem_max,
       datetime(MIN(start_time), 'unixepoch') AS first_start,
       datetime(MAX(end_time), 'unixepoch')   AS last_end
FROM records GROUP BY owner;

-- Per execution host: the same sums, and how many jobs failed (failed != 0 or exit_status != 0).
CREATE VIEW jobs_by_host AS
SELECT hostname,
       COUNT(*)                                            AS jobs,
       SUM(failed != 0 OR exit_status != 0)                AS unsuccessful,
       SUM(ru_wallclock) AS wallclock,
       SUM(cpu)          AS cpu,
       SUM(mem)          AS mem,
       MAX(maxvmem)      AS maxvmem_max
FROM records GROUP BY hostname;

-- Per UTC day of the start time: jobs, distinct owners, cpu and memory.
CREATE VIEW usage_by_day AS
SELECT date(start_time, 'unixepoch') AS day,
       COUNT(*)                      AS jobs,
       COUNT(DISTINCT owner)         AS owners,
       SUM(cpu)                      AS cpu,
       SUM(mem)                      AS mem
FROM records GROUP BY day;

-- Records stored but whose line is not confirmed in the accounting file yet (normally empty;
-- the daemon appends them within milliseconds, or at its next start).
CREATE VIEW not_in_file AS
SELECT id, hostname, job_number, task_number, start_time, owner, datetime(received_at, 'unixepoch') AS received
FROM records WHERE appended_at IS NULL;
