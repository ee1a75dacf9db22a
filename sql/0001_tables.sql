-- The tables users see in Supabase. Every row belongs to `user_id`, which defaults
-- to the caller (auth.uid()), so clients never send it.

create table if not exists public.time_entries (
  id               uuid primary key default gen_random_uuid(),
  user_id          uuid not null default auth.uid(),
  message_id       text not null,
  thread_id        text,
  client           text,
  matter           text,
  activity         text not null
                   check (activity in ('email_sent', 'email_received', 'meeting', 'call', 'other')),
  description      text not null default '',
  work_date        date not null,
  duration_minutes double precision not null check (duration_minutes >= 0),
  billed_minutes   integer not null check (billed_minutes >= 0),
  hourly_rate      double precision not null default 0,
  amount           double precision not null default 0,
  currency         text not null,
  billable         boolean not null default true,
  confidence       double precision not null check (confidence between 0 and 1),
  status           text not null default 'suggested'
                   check (status in ('suggested', 'needs_review', 'approved', 'rejected')),
  analyzer         text not null,
  event_uid        text,
  -- The case-insensitive client filter compares this, so an index can serve it.
  client_key       text generated always as (lower(client)) stored,
  -- 0 when inserted, +1 for every update that changed something: tells a bulk
  -- upsert's caller which rows it created.
  revision         integer not null default 0,
  created_at       timestamptz not null default now(),
  updated_at       timestamptz not null default now()
);

-- A message yields at most one entry per user; bulk upserts conflict on this.
create unique index if not exists time_entries_user_message
  on public.time_entries (user_id, message_id);
-- list_time_entries: newest first, by date range.
create index if not exists time_entries_user_date
  on public.time_entries (user_id, work_date desc);
-- list_time_entries filtered by client.
create index if not exists time_entries_user_client_date
  on public.time_entries (user_id, client_key, work_date);

-- A bulk upsert (`resolution=merge-duplicates`) is a re-analysis: it keeps the
-- entry's id and created_at, never overwrites an entry a person approved or
-- rejected (unless the new status is itself a decision), and skips rows that would
-- not change, so a retried chunk writes nothing.
create or replace function public.time_entries_before_update() returns trigger
language plpgsql
as $$
begin
  if old.status in ('approved', 'rejected') and new.status not in ('approved', 'rejected') then
    return null;
  end if;
  new.id := old.id;
  new.user_id := old.user_id;
  new.created_at := old.created_at;
  if (new.thread_id, new.client, new.matter, new.activity, new.description, new.work_date,
      new.duration_minutes, new.billed_minutes, new.hourly_rate, new.amount, new.currency,
      new.billable, new.confidence, new.status, new.analyzer, new.event_uid)
     is not distinct from
     (old.thread_id, old.client, old.matter, old.activity, old.description, old.work_date,
      old.duration_minutes, old.billed_minutes, old.hourly_rate, old.amount, old.currency,
      old.billable, old.confidence, old.status, old.analyzer, old.event_uid) then
    return null;
  end if;
  new.revision := old.revision + 1;
  new.updated_at := now();
  return new;
end
$$;

drop trigger if exists time_entries_before_update on public.time_entries;
create trigger time_entries_before_update
  before update on public.time_entries
  for each row execute function public.time_entries_before_update();

create table if not exists public.processed_messages (
  user_id      uuid not null default auth.uid(),
  message_id   text not null,
  content_hash text not null,
  analyzer     text not null,
  outcome      text not null,
  reason       text,
  processed_at timestamptz not null default now(),
  primary key (user_id, message_id)
);

create table if not exists public.tracking_settings (
  user_id    uuid primary key default auth.uid(),
  settings   jsonb not null,
  updated_at timestamptz not null default now()
);

create table if not exists public.calendar_events (
  user_id    uuid not null default auth.uid(),
  uid        text not null,
  sequence   bigint not null,
  cancelled  boolean not null,
  message_id text,
  updated_at timestamptz not null default now(),
  primary key (user_id, uid)
);

create table if not exists public.scans (
  user_id         uuid not null default auth.uid(),
  id              text not null,
  source          text not null,
  query           text,
  started_at      timestamptz not null,
  finished_at     timestamptz,
  status          text not null,
  examined        bigint not null default 0,
  entries_created bigint not null default 0,
  errors          bigint not null default 0,
  cursor          text,
  updated_at      timestamptz not null default now(),
  primary key (user_id, id)
);
create index if not exists scans_user_started
  on public.scans (user_id, started_at desc);
