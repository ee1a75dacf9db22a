-- Background scans: one row per job, delivered to workers by the pgmq queue
-- `scan_jobs` (0007_pgmq). Users read their own jobs under RLS and change them only
-- through the two functions below; workers claim, renew and end jobs over their own
-- connection as `billable_worker`, a role that can touch the queue and the jobs'
-- state but none of the users' entries, mail records or settings: a worker reads
-- and writes those through PostgREST with a short-lived JWT of the job's user.

create table if not exists public.scan_jobs (
  id               uuid primary key default gen_random_uuid(),
  user_id          uuid not null default auth.uid(),
  args             jsonb not null default '{}',
  state            text not null default 'queued'
                   check (state in ('queued', 'running', 'completed', 'interrupted', 'failed', 'cancelled')),
  cancel_requested boolean not null default false,
  progress         jsonb not null default '{}',
  result           jsonb,
  error            text,
  attempts         integer not null default 0,
  worker           text,
  lease_until      timestamptz,
  created_at       timestamptz not null default now(),
  started_at       timestamptz,
  updated_at       timestamptz not null default now(),
  finished_at      timestamptz
);

-- At most one running scan per user, whichever worker runs it.
create unique index if not exists scan_jobs_one_running
  on public.scan_jobs (user_id) where state = 'running';
create index if not exists scan_jobs_user_created
  on public.scan_jobs (user_id, created_at desc);

alter table public.scan_jobs enable row level security;
drop policy if exists scan_jobs_own on public.scan_jobs;
create policy scan_jobs_own on public.scan_jobs
  for select to authenticated using (user_id = auth.uid());
grant select on public.scan_jobs to authenticated;

select pgmq.create('scan_jobs')
where not exists (select 1 from pgmq.list_queues() where queue_name = 'scan_jobs');

-- Queues a scan for the caller. Security definer: users have no rights on pgmq.
create or replace function public.enqueue_scan(args jsonb)
returns setof public.scan_jobs
language plpgsql
security definer
set search_path = ''
as $$
declare
  me uuid := auth.uid();
  job public.scan_jobs;
begin
  if me is null then
    raise exception 'sign in to queue a scan' using errcode = '42501';
  end if;
  if args is null or jsonb_typeof(args) <> 'object' or octet_length(args::text) > 4096 then
    raise exception 'a scan''s arguments are a JSON object of at most 4096 bytes'
      using errcode = 'BL429';
  end if;
  -- One user's requests queue one after another here, so the count holds.
  perform pg_advisory_xact_lock(hashtextextended('billable scan_jobs ' || me::text, 0));
  if (select count(*) from public.scan_jobs j where j.user_id = me and j.state = 'queued') >= 5 then
    raise exception 'you already have 5 scans waiting; wait for them (list_scans) or cancel one (cancel_scan)'
      using errcode = 'BL429';
  end if;
  insert into public.scan_jobs (user_id, args) values (me, args) returning * into job;
  perform pgmq.send('scan_jobs', jsonb_build_object('job_id', job.id));
  return next job;
end
$$;

-- Asks the caller's job to stop: a queued job is cancelled at once, a running one
-- by its worker at its next heartbeat. Another user's job is not found.
create or replace function public.cancel_scan(job_id uuid)
returns setof public.scan_jobs
language sql
security definer
set search_path = ''
as $$
  update public.scan_jobs j
     set cancel_requested = true,
         updated_at = now(),
         state = case when j.state = 'queued' then 'cancelled' else j.state end,
         finished_at = case when j.state = 'queued' then now() else j.finished_at end
   where j.id = cancel_scan.job_id
     and j.user_id = auth.uid()
     and j.state in ('queued', 'running')
  returning j.*;
$$;

revoke all on function public.enqueue_scan(jsonb) from public;
revoke all on function public.cancel_scan(uuid) from public;
grant execute on function public.enqueue_scan(jsonb) to authenticated;
grant execute on function public.cancel_scan(uuid) to authenticated;

-- The workers' role: give it LOGIN and a password on your project
-- (`alter role billable_worker login password '…'`) and put it in the workers'
-- DATABASE_URL. It may use the queue and change the jobs' state, nothing else.
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'billable_worker') then
    create role billable_worker nologin;
  end if;
end
$$;
grant usage on schema pgmq to billable_worker;
grant select, insert, update, delete on all tables in schema pgmq to billable_worker;
grant usage, select on all sequences in schema pgmq to billable_worker;
grant execute on all functions in schema pgmq to billable_worker;
grant usage on schema public to billable_worker;
grant select (id, user_id, args, state, cancel_requested, progress, attempts, worker, lease_until,
              started_at),
      update (state, progress, result, error, attempts, worker, lease_until, started_at,
              updated_at, finished_at)
  on public.scan_jobs to billable_worker;
-- The workers see every job (the table is their queue) and change only what the
-- grants above allow.
drop policy if exists scan_jobs_worker_read on public.scan_jobs;
create policy scan_jobs_worker_read on public.scan_jobs
  for select to billable_worker using (true);
drop policy if exists scan_jobs_worker_update on public.scan_jobs;
create policy scan_jobs_worker_update on public.scan_jobs
  for update to billable_worker using (true) with check (true);
