-- Rate limits shared by every `billable serve` and `billable worker` of a deployment:
-- each user's request rate, each user's Gmail quota and the LLM account's requests
-- and tokens per minute. One bucket per key, kept as GCRA's theoretical arrival time
-- on Postgres's clock, so however many processes on however many machines charge
-- it, it lets through at most `burst` plus `per_second` a second.
--
-- Only `billable_worker` (the processes' DATABASE_URL) may charge a bucket; nobody
-- reads or writes them through the Data API.
--
-- Unlogged: a charge writes no WAL (a third of the time of a logged one, measured
-- with pgbench), and a crash that empties the buckets only makes them full, at most
-- one burst more than the rate for a moment.

create unlogged table if not exists public.rate_buckets (
  key text primary key,
  tat timestamptz not null
);
alter table public.rate_buckets enable row level security;
revoke all on public.rate_buckets from public, anon, authenticated;

-- Charges `cost` to `bucket`, which allows `per_second` with bursts of `burst`.
-- `reserve`: always charges, and answers how many seconds the caller waits before it
-- goes ahead (its turn is kept meanwhile). Otherwise: charges only when it may go
-- ahead now (answers 0), else answers the seconds until it may (charging nothing).
create or replace function public.take_rate(
  bucket text, cost float8, per_second float8, burst float8, reserve boolean)
returns float8
language plpgsql
security definer
set search_path = ''
as $$
declare
  now_ timestamptz := clock_timestamp();
  step float8;
  tat_ timestamptz;
  wait float8;
begin
  if coalesce(per_second, 0) <= 0 or coalesce(cost, 0) <= 0 then
    return 0;
  end if;
  step := 1.0 / per_second;
  cost := least(cost, greatest(burst, 1));
  -- A bucket idle long enough is full: its arrival time catches up with now.
  insert into public.rate_buckets as b (key, tat) values (bucket, now_)
    on conflict (key) do update set tat = greatest(b.tat, now_)
    returning b.tat into tat_;
  wait := extract(epoch from tat_ - now_) + (cost - greatest(burst, 1)) * step;
  if wait > 0 and not reserve then
    return wait;
  end if;
  update public.rate_buckets set tat = tat_ + make_interval(secs => cost * step)
   where key = bucket;
  if random() < 0.001 then
    delete from public.rate_buckets where tat < now_ - interval '1 hour';
  end if;
  return greatest(wait, 0);
end
$$;

revoke all on function public.take_rate(text, float8, float8, float8, boolean)
  from public, anon, authenticated;
grant execute on function public.take_rate(text, float8, float8, float8, boolean)
  to billable_worker;
