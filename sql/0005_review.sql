-- Review and release: UTBMS codes, a person's review, exports and merges.
-- The new columns are on time_entries, so its row-level security covers them.

alter table public.time_entries
  add column if not exists task_code     text,
  add column if not exists activity_code text,
  -- When a person last approved, rejected, edited, merged or added the entry.
  add column if not exists reviewed_at   timestamptz,
  add column if not exists export_batch  text,
  add column if not exists exported_at   timestamptz,
  -- The entry this one was merged into; merged entries are hidden until split.
  add column if not exists merged_into   uuid,
  add column if not exists matter_key    text generated always as (lower(matter)) stored;

create index if not exists time_entries_merged
  on public.time_entries (user_id, merged_into) where merged_into is not null;
-- A scan asks for the matter of each thread it sees (thread_matters).
create index if not exists time_entries_user_thread
  on public.time_entries (user_id, thread_id) where thread_id is not null;

-- A bulk upsert (`resolution=merge-duplicates`) is a re-analysis: it keeps the
-- entry's id and created_at and never changes an entry a person reviewed, merged or
-- exported. A person's change (review_time_entries) always moves one of the review
-- marks, which is how the two are told apart. Rows that would not change are
-- skipped, so a retried chunk writes nothing.
create or replace function public.time_entries_before_update() returns trigger
language plpgsql
as $$
begin
  if (old.status in ('approved', 'rejected') or old.reviewed_at is not null
      or old.merged_into is not null or old.exported_at is not null)
     and (new.reviewed_at, new.export_batch, new.exported_at, new.merged_into)
         is not distinct from
         (old.reviewed_at, old.export_batch, old.exported_at, old.merged_into) then
    return null;
  end if;
  new.id := old.id;
  new.user_id := old.user_id;
  new.created_at := old.created_at;
  if (new.thread_id, new.client, new.matter, new.activity, new.description, new.work_date,
      new.duration_minutes, new.billed_minutes, new.hourly_rate, new.amount, new.currency,
      new.billable, new.confidence, new.status, new.analyzer, new.event_uid,
      new.task_code, new.activity_code, new.reviewed_at, new.export_batch, new.exported_at,
      new.merged_into)
     is not distinct from
     (old.thread_id, old.client, old.matter, old.activity, old.description, old.work_date,
      old.duration_minutes, old.billed_minutes, old.hourly_rate, old.amount, old.currency,
      old.billable, old.confidence, old.status, old.analyzer, old.event_uid,
      old.task_code, old.activity_code, old.reviewed_at, old.export_batch, old.exported_at,
      old.merged_into) then
    return null;
  end if;
  new.revision := old.revision + 1;
  new.updated_at := now();
  return new;
end
$$;

-- A person's change, in one transaction: removes `p_deletes`, then writes each of
-- `p_rows` whole by id (inserting new ones). Security invoker: row-level security
-- applies, so another user's id is an error and nothing is written.
create or replace function public.review_time_entries(p_rows jsonb, p_deletes uuid[])
returns integer
language plpgsql security invoker
as $$
declare
  written integer;
begin
  delete from public.time_entries
  where user_id = (select auth.uid()) and id = any(p_deletes);
  insert into public.time_entries as t (
    id, message_id, thread_id, client, matter, activity, description, work_date,
    duration_minutes, billed_minutes, hourly_rate, amount, currency, billable, confidence,
    status, analyzer, event_uid, task_code, activity_code, created_at, reviewed_at,
    export_batch, exported_at, merged_into)
  select r.id, r.message_id, r.thread_id, r.client, r.matter, r.activity, r.description,
         r.work_date, r.duration_minutes, r.billed_minutes, r.hourly_rate, r.amount,
         r.currency, r.billable, r.confidence, r.status, r.analyzer, r.event_uid,
         r.task_code, r.activity_code, r.created_at, r.reviewed_at, r.export_batch,
         r.exported_at, r.merged_into
  from jsonb_to_recordset(p_rows) as r(
    id uuid, message_id text, thread_id text, client text, matter text, activity text,
    description text, work_date date, duration_minutes double precision,
    billed_minutes integer, hourly_rate double precision, amount double precision,
    currency text, billable boolean, confidence double precision, status text,
    analyzer text, event_uid text, task_code text, activity_code text,
    created_at timestamptz, reviewed_at timestamptz, export_batch text,
    exported_at timestamptz, merged_into uuid)
  on conflict (id) do update set
    thread_id = excluded.thread_id, client = excluded.client, matter = excluded.matter,
    activity = excluded.activity, description = excluded.description,
    work_date = excluded.work_date, duration_minutes = excluded.duration_minutes,
    billed_minutes = excluded.billed_minutes, hourly_rate = excluded.hourly_rate,
    amount = excluded.amount, currency = excluded.currency, billable = excluded.billable,
    confidence = excluded.confidence, status = excluded.status,
    analyzer = excluded.analyzer, event_uid = excluded.event_uid,
    task_code = excluded.task_code, activity_code = excluded.activity_code,
    reviewed_at = excluded.reviewed_at, export_batch = excluded.export_batch,
    exported_at = excluded.exported_at, merged_into = excluded.merged_into;
  get diagnostics written = row_count;
  return written;
end
$$;

revoke all on function public.review_time_entries(jsonb, uuid[]) from public, anon;
grant execute on function public.review_time_entries(jsonb, uuid[]) to authenticated;

-- Totals as before, now leaving out entries merged into another (the merged entry
-- counts them), filtered by status and matter, and grouped by status too.
drop function if exists public.time_summary(date, date, text, boolean);
create or replace function public.time_summary(
  p_from date default null,
  p_to date default null,
  p_group_by text default 'client',
  p_billable_only boolean default false,
  p_status text default null,
  p_matter text default null
)
returns table (
  is_total       boolean,
  key            text,
  currency       text,
  entries        bigint,
  raw_minutes    double precision,
  billed_minutes bigint,
  billed_hours   double precision,
  amount         double precision
)
language sql stable security invoker
as $$
  with picked as (
    select
      case p_group_by
        when 'client' then coalesce(nullif(e.client, ''), '(none)')
        when 'matter' then coalesce(nullif(e.matter, ''), '(none)')
        when 'status' then e.status
        when 'day' then to_char(e.work_date, 'YYYY-MM-DD')
        when 'week' then to_char(date_trunc('week', e.work_date)::date, 'YYYY-MM-DD')
        when 'month' then to_char(e.work_date, 'YYYY-MM')
      end as key,
      e.currency, e.duration_minutes, e.billed_minutes, e.amount
    from public.time_entries e
    where e.user_id = (select auth.uid())
      and e.merged_into is null
      and (case when p_status is null then e.status <> 'rejected' else e.status = p_status end)
      and (p_matter is null or e.matter_key = lower(p_matter))
      and (p_from is null or e.work_date >= p_from)
      and (p_to is null or e.work_date <= p_to)
      and (not p_billable_only or e.billable)
  )
  select g.grouping_id = 1, coalesce(g.key, 'total'), g.currency, g.entries,
         round(g.raw::numeric, 1)::double precision,
         g.billed,
         round(g.billed / 60.0, 2)::double precision,
         round(g.amount::numeric, 2)::double precision
  from (
    select grouping(key) as grouping_id, key, currency, count(*) as entries,
           sum(duration_minutes) as raw, sum(billed_minutes)::bigint as billed,
           sum(amount) as amount
    from picked
    group by grouping sets ((key, currency), (currency))
  ) g
  order by g.grouping_id,
           case when p_group_by in ('client', 'matter', 'status') then -g.billed else 0 end,
           2, 3
$$;

revoke all on function public.time_summary(date, date, text, boolean, text, text) from public, anon;
grant execute on function public.time_summary(date, date, text, boolean, text, text) to authenticated;

-- For each of `p_threads`: the client and matter of its latest entry that has a
-- matter, so a scan files a reply like the thread's earlier mail. A body parameter,
-- like calendar_event_states, because a thread id (a Message-ID) may hold any
-- character.
create or replace function public.thread_matters(p_threads text[])
returns table (thread_id text, client text, matter text)
language sql stable security invoker
as $$
  select distinct on (e.thread_id) e.thread_id, e.client, e.matter
  from public.time_entries e
  where e.user_id = (select auth.uid()) and e.thread_id = any(p_threads)
    and e.client is not null and e.matter is not null and e.matter <> ''
  order by e.thread_id, e.work_date desc, e.created_at desc
$$;

revoke all on function public.thread_matters(text[]) from public, anon;
grant execute on function public.thread_matters(text[]) to authenticated;
