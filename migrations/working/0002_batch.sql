-- Batch module: what the batch system says about each job, its cgroup tree, the monitor's
-- samples, and the outbox of accounting records not yet delivered.

ALTER TABLE jobs ADD COLUMN cgroup TEXT;             -- "<parent_cgroup>/<job_key>", NULL without cgroups
ALTER TABLE jobs ADD COLUMN parent_pid INTEGER;      -- the process put in COMMON (SGE's shepherd)
ALTER TABLE jobs ADD COLUMN queue TEXT;
ALTER TABLE jobs ADD COLUMN host TEXT;
ALTER TABLE jobs ADD COLUMN job_name TEXT;
ALTER TABLE jobs ADD COLUMN account TEXT;
ALTER TABLE jobs ADD COLUMN submission_time REAL;
ALTER TABLE jobs ADD COLUMN start_time REAL;
ALTER TABLE jobs ADD COLUMN max_cpu_seconds REAL;    -- h_cpu; NULL = unlimited
ALTER TABLE jobs ADD COLUMN max_mem_bytes INTEGER;   -- min(h_data, h_vmem); NULL = unlimited
ALTER TABLE jobs ADD COLUMN terminate_method TEXT;
-- 'live' while sampled; 'killed' after a quota kill; 'vanished' when its cgroup disappeared;
-- 'unmonitored' without cgroups.
ALTER TABLE jobs ADD COLUMN monitor_state TEXT NOT NULL DEFAULT 'unmonitored';
ALTER TABLE jobs ADD COLUMN failed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN exit_status INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN kill_reason TEXT;

-- One row per job per monitor tick (and at configure and clean). Counters are cumulative.
CREATE TABLE samples (
    job_id          INTEGER NOT NULL REFERENCES jobs(id),
    taken_at        REAL    NOT NULL,
    cpu_ns_tree     INTEGER NOT NULL,
    cpu_ns_common   INTEGER NOT NULL,
    mem_bytes_tree  INTEGER NOT NULL,
    mem_bytes_common INTEGER NOT NULL,
    max_mem_bytes_tree INTEGER NOT NULL
);
CREATE INDEX samples_job ON samples(job_id, taken_at);

-- Accounting records waiting for (or done with) delivery. One per job, written in the same
-- transaction that marks the job cleaned.
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id        INTEGER NOT NULL UNIQUE REFERENCES jobs(id),
    record        TEXT    NOT NULL,   -- the record as JSON
    line          TEXT    NOT NULL,   -- the same record as one SGE accounting line
    created_at    REAL    NOT NULL,
    state         TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'rejected')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_try_at   REAL    NOT NULL,
    delivered_at  REAL,
    last_error    TEXT
);
CREATE INDEX outbox_pending ON outbox(state, next_try_at);
