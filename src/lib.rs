//! billable finds the billable work hidden in a mailbox.
//!
//! A scan reads a mail source, drops automated mail (triage), turns the rest into
//! suggested time entries (an analyzer) and saves them (a store). Transports (the CLI,
//! later HTTP and MCP) call the same tool registry in `tools`.

/// The analyzers: triage, the offline rules, durations and rounding.
pub mod analyze;
/// Command-line interface: clap definitions and human/JSON output.
pub mod cli;
/// Every environment variable and flag that configures a run.
pub mod config;
/// The shared context every tool runs with: source, analyzer, store, caches.
pub mod context;
/// Plain types: emails, settings, entries, summaries.
pub mod domain;
/// The library's error type and how it is classified.
pub mod error;
/// Measuring accuracy on labelled mail: the labels format, scoring, the learning split.
pub mod eval;
/// Exports of reviewed entries for billing systems: our CSV, LEDES 1998B, Harvest, Toggl.
pub mod export;
/// The HTTP tool server: OpenAI function calling, MCP at /mcp, auth, limits, metrics.
pub mod http;
/// Background scans: the jobs, the worker loop and the Postgres queue.
pub mod jobs;
/// Rate limits shared by every process of a deployment (Postgres), or per process.
pub mod limits;
/// Mail sources and parsing.
pub mod mail;
/// The tools over the Model Context Protocol (stdio and streamable HTTP).
pub mod mcp;
/// Process-wide counters and latency histograms (Prometheus text).
pub mod metrics;
/// `billable migrate`: the Postgres/Supabase migrations in sql/.
pub mod migrate;
/// Files and folders created readable only by the user.
pub mod private;
/// Stores: the embedded SQLite file.
pub mod store;
/// The tools: the only place the business flow lives.
pub mod tools;

pub use context::Context;
pub use error::{Error, Result};
