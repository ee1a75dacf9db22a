-- Evidence of work learnt from reviews.
--
-- `features`: for a message that got an entry, the words and shape of the message
-- the evidence model weighed (space-separated), so that the person's approval or
-- rejection of the entry teaches later scans what work looks like for that user.
-- The row is the user's own under the existing RLS policies of processed_messages.
alter table public.processed_messages
  add column if not exists features text;

-- The caller's reviewed entries' features and verdicts, reviewed after p_since when
-- given (a reset of what was learnt). Merged entries are left out: the merged entry
-- is what the user decided on.
create or replace function public.reviewed_features(p_since timestamptz default null)
returns table (features text, approved boolean)
language sql stable security invoker
as $$
  select p.features, e.status = 'approved'
  from public.time_entries e
  join public.processed_messages p
    on p.user_id = e.user_id and p.message_id = e.message_id
  where e.user_id = (select auth.uid()) and p.features is not null
    and e.status in ('approved', 'rejected') and e.merged_into is null
    and (p_since is null or e.reviewed_at > p_since)
$$;

revoke all on function public.reviewed_features(timestamptz) from public, anon;
grant execute on function public.reviewed_features(timestamptz) to authenticated;
