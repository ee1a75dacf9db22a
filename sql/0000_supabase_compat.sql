-- Plain Postgres only: what every Supabase project already has, so the later
-- migrations and PostgREST (or postrust) behave the same on a bare server.
-- `billable migrate` skips this file when the database already has an `auth`
-- schema (a Supabase project); never apply it to Supabase by hand.
--
-- Roles: `authenticator` is the login PostgREST connects as; it may only switch to
-- `anon` (no token) or `authenticated` (a valid user JWT). Roles are cluster-wide,
-- so they are created only when missing. Set a password on `authenticator` (ALTER
-- ROLE authenticator PASSWORD '…') unless the server only accepts local trust logins.
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
  end if;
exception when duplicate_object or unique_violation then
  -- Another database of this cluster created them at the same moment.
  null;
end
$$;

grant anon, authenticated to authenticator;
grant usage on schema public to anon, authenticated;

create schema if not exists auth;
grant usage on schema auth to anon, authenticated;

-- The caller's user id: the `sub` claim of the JWT PostgREST verified, exactly as
-- Supabase defines it (both the old per-claim setting and the JSON one).
create or replace function auth.uid() returns uuid
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;

create or replace function auth.role() returns text
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;

create or replace function auth.jwt() returns jsonb
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;
