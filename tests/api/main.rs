//! Integration tests, one binary (CONVENTIONS §7). Each test gets its own database.

mod browser;
mod cli;
mod contract;
mod corpus;
mod eval;
mod fake_gmail;
mod fake_openai;
mod gmail;
mod gmail_candidates;
mod gmail_query;
mod helpers;
mod hostile;
mod http;
mod jobs;
mod jwks;
mod learning;
mod ledes;
mod llama;
mod llm;
mod llm_servers;
#[path = "../../benches/support/mbox_gen.rs"]
mod mbox_gen;
mod mcp;
mod new_user;
mod poison;
mod postgres;
mod readme;
mod review;
mod review_cli;
mod scale_out;
mod scan;
mod services;
mod store_suite;
mod supabase;
mod web;
mod workers;
