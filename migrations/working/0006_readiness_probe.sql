-- GET /ready proves the database takes a durable write by writing this one row (a full disk or a
-- read-only filesystem fails it), without touching any table that holds real state.
CREATE TABLE readiness_probe (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    probed_at  REAL    NOT NULL
);
