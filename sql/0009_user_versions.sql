-- A version per user, moved on by every write to their entries or settings: a
-- server's summary cache checks it on each hit, so a summary is never served stale
-- after a write through another server instance.

create table if not exists public.user_versions (
  user_id uuid primary key,
  version bigint not null default 0
);

alter table public.user_versions enable row level security;
drop policy if exists user_versions_own on public.user_versions;
create policy user_versions_own on public.user_versions
  for select to authenticated using (user_id = auth.uid());
grant select on public.user_versions to authenticated;

-- Statement-level: a bulk upsert of 1,000 rows moves each user's version once.
-- Security definer: users cannot write the table themselves.
create or replace function public.bump_user_versions() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_op = 'DELETE' then
    insert into public.user_versions (user_id, version)
      select distinct user_id, 1 from old_rows
      on conflict (user_id) do update set version = public.user_versions.version + 1;
  else
    insert into public.user_versions (user_id, version)
      select distinct user_id, 1 from new_rows
      on conflict (user_id) do update set version = public.user_versions.version + 1;
  end if;
  return null;
end
$$;

do $$
declare
  t text;
begin
  foreach t in array array['time_entries', 'tracking_settings'] loop
    execute format('drop trigger if exists %I on public.%I', t || '_version_insert', t);
    execute format('create trigger %I after insert on public.%I referencing new table as new_rows
                    for each statement execute function public.bump_user_versions()', t || '_version_insert', t);
    execute format('drop trigger if exists %I on public.%I', t || '_version_update', t);
    execute format('create trigger %I after update on public.%I referencing new table as new_rows
                    for each statement execute function public.bump_user_versions()', t || '_version_update', t);
    execute format('drop trigger if exists %I on public.%I', t || '_version_delete', t);
    execute format('create trigger %I after delete on public.%I referencing old table as old_rows
                    for each statement execute function public.bump_user_versions()', t || '_version_delete', t);
  end loop;
end
$$;
