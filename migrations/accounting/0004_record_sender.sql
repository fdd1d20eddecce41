-- Which node sent each record, as its verified TLS client certificate names it (per-node mode,
-- [server] tls_client_ca; see docs/deploy.md). NULL for records that came over plain HTTP or
-- TLS without client certificates, where only the shared admin token vouches for the sender,
-- and for every record stored before this migration.
ALTER TABLE records ADD COLUMN sent_by TEXT;
