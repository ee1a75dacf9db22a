-- Scheduled scans: a user's `schedule` setting (`daily HH:MM` or `weekdays HH:MM`
-- in their `timezone`, kept in tracking_settings) makes a scan of new mail due at
-- each slot. `enqueue_due_scans` queues one job per user and slot (the unique index
-- below makes that hold however many workers and `billable schedule run-now` ask at
-- once); workers call it every minute, so no cron is needed.

alter table public.scan_jobs add column if not exists scheduled_for timestamptz;
create unique index if not exists scan_jobs_scheduled_once
  on public.scan_jobs (user_id, scheduled_for) where scheduled_for is not null;
grant select (scheduled_for) on public.scan_jobs to billable_worker;

-- The latest slot of `schedule` at or before `at`, in time zone `tz`; null when the
-- schedule or zone cannot be read. Mirrors `Schedule::latest_slot` in Rust.
create or replace function public.latest_schedule_slot(schedule text, tz text, at timestamptz)
returns timestamptz
language plpgsql
stable
set search_path = ''
as $$
declare
  days  text := lower(split_part(trim(schedule), ' ', 1));
  clock time;
  local timestamp;
  day   date;
begin
  if days not in ('daily', 'weekdays') or trim(schedule) !~ '^\S+\s+\d{1,2}:\d{2}$' then
    return null;
  end if;
  clock := split_part(regexp_replace(trim(schedule), '\s+', ' ', 'g'), ' ', 2)::time;
  local := at at time zone tz;
  day := local::date;
  if local::time < clock then
    day := day - 1;
  end if;
  while days = 'weekdays' and extract(isodow from day) > 5 loop
    day := day - 1;
  end loop;
  return (day + clock) at time zone tz;
exception when others then
  return null;
end
$$;

-- Queues the due scheduled scans of every user; the jobs it queued. Security
-- definer: it reads every user's schedule, which nobody else may.
create or replace function public.enqueue_due_scans(at timestamptz default now())
returns table (user_id uuid, job_id uuid, scheduled_for timestamptz)
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  r    record;
  due  timestamptz;
  job  public.scan_jobs;
begin
  for r in
    select s.user_id as uid,
           public.latest_schedule_slot(s.settings->>'schedule',
                                       coalesce(s.settings->>'timezone', 'UTC'), at) as slot
      from public.tracking_settings s
     where coalesce(s.settings->>'schedule', '') <> ''
     order by s.user_id
  loop
    due := r.slot;
    continue when due is null;
    continue when (select count(*) from public.scan_jobs j
                    where j.user_id = r.uid and j.state = 'queued') >= 5;
    insert into public.scan_jobs as j (user_id, args, scheduled_for)
      values (r.uid, '{}', due)
      on conflict (user_id, scheduled_for) where scheduled_for is not null do nothing
      returning * into job;
    if job.id is not null then
      perform pgmq.send('scan_jobs', jsonb_build_object('job_id', job.id));
      user_id := job.user_id;
      job_id := job.id;
      scheduled_for := job.scheduled_for;
      return next;
      job := null;
    end if;
  end loop;
end
$$;

revoke all on function public.enqueue_due_scans(timestamptz) from public;
revoke all on function public.latest_schedule_slot(text, text, timestamptz) from public;
grant execute on function public.enqueue_due_scans(timestamptz) to billable_worker;
