-- Bind sources are pinned by descriptor and mounted under the daemon's staging directory
-- (/run/bdocker/binds/<stage>/<n>); the engine only ever sees those paths. The stage of each
-- container is kept so its mounts go with it, and stale ones are found at start.
ALTER TABLE containers ADD COLUMN bind_stage TEXT;
