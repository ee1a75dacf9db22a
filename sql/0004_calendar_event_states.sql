-- The stored state of the caller's calendar events among `p_uids`: a scan asks for a
-- chunk's invites in one call instead of one request per event. A body parameter,
-- like processed_message_ids, because a calendar UID may hold any character.
create or replace function public.calendar_event_states(p_uids text[])
returns table (uid text, sequence bigint, cancelled boolean, message_id text)
language sql stable security invoker
as $$
  select e.uid, e.sequence, e.cancelled, e.message_id
  from public.calendar_events e
  where e.user_id = (select auth.uid()) and e.uid = any(p_uids)
$$;

revoke all on function public.calendar_event_states(text[]) from public, anon;
grant execute on function public.calendar_event_states(text[]) to authenticated;
