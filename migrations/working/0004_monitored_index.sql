-- The monitor reads the live jobs it samples every tick; without this index that read scans
-- every job the node ever had. Partial on the live-job condition the queries repeat
-- (`state <> 'cleaned'`, like jobs_live_key), so it holds only jobs not yet cleaned.
CREATE INDEX jobs_monitored ON jobs(monitor_state) WHERE state <> 'cleaned';
