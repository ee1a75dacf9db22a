//! Integration tests, one binary (CONVENTIONS §7). Each test gets its own database.

mod cli;
mod corpus;
mod helpers;
mod postgres;
mod scan;
mod services;
mod store_suite;
mod supabase;
