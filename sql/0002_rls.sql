-- Row-level security: a signed-in user (role `authenticated`, JWT `sub` = user id)
-- reads and writes only their own rows; `anon` (no token) gets nothing at all.
-- `(select auth.uid())` is evaluated once per statement, so the policies stay
-- index-friendly on large tables.

do $$
declare
  t text;
begin
  foreach t in array array['time_entries', 'processed_messages', 'tracking_settings',
                           'calendar_events', 'scans']
  loop
    execute format('alter table public.%I enable row level security', t);
    execute format('revoke all on table public.%I from anon, public', t);
    execute format('grant select, insert, update, delete on table public.%I to authenticated', t);

    execute format('drop policy if exists %I on public.%I', t || '_select_own', t);
    execute format('create policy %I on public.%I for select to authenticated '
                   'using ((select auth.uid()) = user_id)', t || '_select_own', t);
    execute format('drop policy if exists %I on public.%I', t || '_insert_own', t);
    execute format('create policy %I on public.%I for insert to authenticated '
                   'with check ((select auth.uid()) = user_id)', t || '_insert_own', t);
    execute format('drop policy if exists %I on public.%I', t || '_update_own', t);
    execute format('create policy %I on public.%I for update to authenticated '
                   'using ((select auth.uid()) = user_id) '
                   'with check ((select auth.uid()) = user_id)', t || '_update_own', t);
    execute format('drop policy if exists %I on public.%I', t || '_delete_own', t);
    execute format('create policy %I on public.%I for delete to authenticated '
                   'using ((select auth.uid()) = user_id)', t || '_delete_own', t);
  end loop;
end
$$;

revoke all on function public.time_entries_before_update() from public, anon;
