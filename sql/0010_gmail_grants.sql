-- Each user's Gmail refresh token, for unattended scans: sealed by the server with
-- AES-256-GCM under BILLABLE_TOKEN_KEY (src/mail/gmail/vault.rs) and bound to the
-- user, so the column is unreadable without the key and a row copied to another
-- user does not open. A user writes, reads and deletes (revokes) only their own row;
-- a worker reads it as that user, with the job's short-lived JWT.

create table if not exists public.gmail_grants (
  user_id    uuid primary key default auth.uid(),
  sealed     text not null check (sealed like 'v1:%' and octet_length(sealed) <= 8192),
  updated_at timestamptz not null default now()
);

alter table public.gmail_grants enable row level security;
drop policy if exists gmail_grants_select_own on public.gmail_grants;
create policy gmail_grants_select_own on public.gmail_grants
  for select to authenticated using (user_id = auth.uid());
drop policy if exists gmail_grants_insert_own on public.gmail_grants;
create policy gmail_grants_insert_own on public.gmail_grants
  for insert to authenticated with check (user_id = auth.uid());
drop policy if exists gmail_grants_update_own on public.gmail_grants;
create policy gmail_grants_update_own on public.gmail_grants
  for update to authenticated using (user_id = auth.uid()) with check (user_id = auth.uid());
drop policy if exists gmail_grants_delete_own on public.gmail_grants;
create policy gmail_grants_delete_own on public.gmail_grants
  for delete to authenticated using (user_id = auth.uid());
grant select, insert, update, delete on public.gmail_grants to authenticated;
