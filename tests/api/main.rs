//! Integration tests, one binary (CONVENTIONS §7). Each test gets its own database.

mod cli;
mod corpus;
mod fake_gmail;
mod gmail;
mod fake_openai;
mod helpers;
mod llm;
mod http;
mod jwks;
mod mcp;
mod postgres;
mod scan;
mod services;
mod store_suite;
mod supabase;
