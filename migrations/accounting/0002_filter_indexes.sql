-- bdocker-acct's filters (the questions qacct -g, -q, -h, -P and -A ask; see docs/accounting.md).
-- Owner, job and start time have had their indexes since 0001; these give the others one each,
-- so an audit of one group, queue, host, project or account reads only its own rows however
-- long the history grows. start_time second: a period narrows the same index range.

CREATE INDEX records_group ON records(grp, start_time);
CREATE INDEX records_queue ON records(qname, start_time);
-- qacct -h matches host names ignoring case; the filter does too (hostname = ? COLLATE NOCASE),
-- which only an index of the same collation serves.
CREATE INDEX records_host ON records(hostname COLLATE NOCASE, start_time);
CREATE INDEX records_project ON records(project, start_time);
CREATE INDEX records_account ON records(account, start_time);
