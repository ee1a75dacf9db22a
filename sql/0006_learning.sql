-- Learning from what a scan saw and what the user decided.
--
-- `unmatched_under`: mail that matched no client is marked with the settings'
-- matching key it was judged under; once the clients, their aliases or the owner's
-- addresses change, that mark no longer counts as processed and a scan examines the
-- message again. `counterpart`: the person a message was with, so the people whose
-- suggested entries the user rejected can be told apart in later scans.
alter table public.processed_messages
  add column if not exists unmatched_under text,
  add column if not exists counterpart     text;

drop function if exists public.processed_message_ids(text[]);
create or replace function public.processed_message_ids(p_ids text[], p_matching text default null)
returns setof text
language sql stable security invoker
as $$
  select p.message_id
  from public.processed_messages p
  where p.user_id = (select auth.uid()) and p.message_id = any(p_ids)
    and (p.unmatched_under is null or p.unmatched_under is not distinct from p_matching)
$$;

revoke all on function public.processed_message_ids(text[], text) from public, anon;
grant execute on function public.processed_message_ids(text[], text) to authenticated;

-- For each counterpart of the caller's entries a person approved or rejected: how
-- many of each. Entries merged into another are left out: the merged entry is what
-- the user decided on.
create or replace function public.reviewed_counterparts()
returns table (counterpart text, approved bigint, rejected bigint)
language sql stable security invoker
as $$
  select p.counterpart,
         count(*) filter (where e.status = 'approved'),
         count(*) filter (where e.status = 'rejected')
  from public.time_entries e
  join public.processed_messages p
    on p.user_id = e.user_id and p.message_id = e.message_id
  where e.user_id = (select auth.uid()) and p.counterpart is not null
    and e.status in ('approved', 'rejected') and e.merged_into is null
  group by p.counterpart
$$;

revoke all on function public.reviewed_counterparts() from public, anon;
grant execute on function public.reviewed_counterparts() to authenticated;
