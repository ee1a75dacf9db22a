-- The queue background scans are delivered through: pgmq, the engine of Supabase
-- Queues. Where the extension is available (every Supabase project) it is created;
-- on a Postgres without it, `billable migrate` installs pgmq's own SQL instead
-- (sql/vendor/pgmq.sql, pgmq 1.11.1, PostgreSQL licence); where a `pgmq` schema
-- already exists this step is skipped.
create extension if not exists pgmq;
