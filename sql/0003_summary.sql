-- Functions PostgREST exposes at /rpc/NAME. Both are `security invoker`: they run
-- as the caller, so row-level security applies inside them exactly as it does to
-- the tables. They name every object with its schema and set nothing (no SET
-- search_path), so the planner inlines them into the calling query and its indexes
-- serve them.

-- Totals for a period, grouped by client | matter | day | week | month (weeks start
-- on Monday, keyed by that Monday; months are YYYY-MM). Rejected entries are left
-- out. One row per (group, currency), plus one `is_total` row per currency.
create or replace function public.time_summary(
  p_from date default null,
  p_to date default null,
  p_group_by text default 'client',
  p_billable_only boolean default false
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
        when 'day' then to_char(e.work_date, 'YYYY-MM-DD')
        when 'week' then to_char(date_trunc('week', e.work_date)::date, 'YYYY-MM-DD')
        when 'month' then to_char(e.work_date, 'YYYY-MM')
      end as key,
      e.currency, e.duration_minutes, e.billed_minutes, e.amount
    from public.time_entries e
    where e.user_id = (select auth.uid())
      and e.status <> 'rejected'
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
           case when p_group_by in ('client', 'matter') then -g.billed else 0 end,
           2, 3
$$;

-- Which of `p_ids` the caller's scans already processed.
create or replace function public.processed_message_ids(p_ids text[])
returns setof text
language sql stable security invoker
as $$
  select p.message_id
  from public.processed_messages p
  where p.user_id = (select auth.uid()) and p.message_id = any(p_ids)
$$;

revoke all on function public.time_summary(date, date, text, boolean) from public, anon;
grant execute on function public.time_summary(date, date, text, boolean) to authenticated;
revoke all on function public.processed_message_ids(text[]) from public, anon;
grant execute on function public.processed_message_ids(text[]) to authenticated;
