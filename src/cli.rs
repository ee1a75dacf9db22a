//! The command line: clap definitions, turning commands into tool calls, and printing
//! results as tables (or JSON with `--json`). Exit codes: 0 success, 2 bad input,
//! 3 a dependency unavailable or a scan interrupted, 1 anything else.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};

use crate::config::{AnalyzerChoice, Config, LlmConfig, Secret, SourceConfig};
use crate::context::Context;
use crate::domain::UserId;
use crate::error::{Error, ErrorKind};
use crate::tools::{self, NoProgress, Progress, ScanProgress};

#[derive(Debug, Parser)]
#[command(
    name = "billable",
    version,
    about = "Finds the billable work hidden in a mailbox."
)]
pub struct Cli {
    /// SQLite file for entries and settings [default: billable.sqlite3 in your data directory]
    #[arg(long, global = true, env = "BILLABLE_DB", value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Read mail from an mbox file (e.g. a Google Takeout export)
    #[arg(long, global = true, env = "BILLABLE_MBOX", value_name = "FILE", conflicts_with_all = ["maildir", "eml_dir"])]
    pub mbox: Option<PathBuf>,
    /// Read mail from a Maildir folder
    #[arg(
        long,
        global = true,
        env = "BILLABLE_MAILDIR",
        value_name = "DIR",
        conflicts_with = "eml_dir"
    )]
    pub maildir: Option<PathBuf>,
    /// Read mail from a folder of .eml files
    #[arg(long, global = true, env = "BILLABLE_EML_DIR", value_name = "DIR")]
    pub eml_dir: Option<PathBuf>,
    /// Read mail from Gmail (credentials from GMAIL_* variables; see `billable auth gmail`)
    #[arg(long, global = true, conflicts_with_all = ["mbox", "maildir", "eml_dir"])]
    pub gmail: bool,
    /// Apply these settings (a JSON object, as for `configure`) before the command
    #[arg(long, global = true, value_name = "FILE")]
    pub settings: Option<PathBuf>,
    /// Print JSON instead of tables
    #[arg(long, global = true)]
    pub json: bool,
    /// Which analyzer runs [default: llm when OPENAI_API_KEY or OPENAI_BASE_URL is set, else rules]
    #[arg(long, global = true, value_enum)]
    pub analyzer: Option<AnalyzerArg>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AnalyzerArg {
    /// The offline rules
    Rules,
    /// An OpenAI-compatible model (OPENAI_* variables)
    Llm,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GroupByArg {
    Client,
    Matter,
    Day,
    Week,
    Month,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusArg {
    Suggested,
    NeedsReview,
    Approved,
    Rejected,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan the mailbox and save suggested time entries
    Scan {
        /// Gmail-style query, e.g. 'from:acme.com subject:contract'
        #[arg(long)]
        query: Option<String>,
        /// Only messages dated on or after this day (YYYY-MM-DD)
        #[arg(long)]
        after: Option<String>,
        /// Only messages dated before this day (YYYY-MM-DD)
        #[arg(long)]
        before: Option<String>,
        /// Stop after examining this many messages
        #[arg(long = "max")]
        max_messages: Option<u64>,
        /// Analyze and report without saving
        #[arg(long)]
        dry_run: bool,
        /// Analyze messages again even if already processed
        #[arg(long)]
        reanalyze: bool,
    },
    /// Analyze one message (an .eml file, or --id from the mail source)
    Analyze {
        /// An RFC 5322 message file; `-` reads standard input
        file: Option<PathBuf>,
        /// A message id from the mail source instead of a file
        #[arg(long, conflicts_with = "file")]
        id: Option<String>,
        /// Save the proposed entry
        #[arg(long)]
        save: bool,
    },
    /// Totals for a period
    Summary {
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long, value_enum, default_value = "client")]
        group_by: GroupByArg,
        #[arg(long)]
        billable_only: bool,
    },
    /// List time entries, newest first
    Entries {
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        client: Option<String>,
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        offset: Option<u32>,
    },
    /// Show settings, or change them with --set KEY=VALUE (VALUE is JSON or a plain string)
    Configure {
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Run any tool with JSON arguments and print its JSON result
    Tool {
        name: String,
        /// Arguments as a JSON object; `-` reads standard input [default: {}]
        args: Option<String>,
    },
    /// Print the OpenAI `tools` array
    Tools,
    /// Serve the tools over HTTP (OpenAI function calling at /v1, MCP at /mcp)
    Serve {
        /// Address to listen on [env: BILLABLE_BIND; default: 127.0.0.1:8787]
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
    },
    /// Serve the tools over MCP on stdin/stdout (for Claude Desktop, IDEs, agents)
    Mcp,
    /// Apply the Postgres migrations in sql/ to DATABASE_URL (plain Postgres or Supabase)
    Migrate {
        /// Never apply the plain-Postgres stand-in for Supabase's roles and auth schema
        /// (it is skipped anyway when the database has an `auth` schema)
        #[arg(long)]
        no_compat: bool,
    },
    /// Authorise access to a mail account
    Auth {
        #[command(subcommand)]
        provider: AuthProvider,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuthProvider {
    /// Let billable read your Gmail (scope gmail.readonly only): opens Google's consent
    /// page and stores the tokens, readable only by you, in your config directory
    Gmail {
        /// The OAuth client secret (Desktop app) downloaded from Google Cloud
        #[arg(long, env = "GMAIL_CLIENT_SECRET_FILE", value_name = "FILE")]
        client_secret: PathBuf,
        /// Where to store the tokens [default: gmail-token.json in your config directory]
        #[arg(long, env = "GMAIL_TOKEN_FILE", value_name = "FILE")]
        token_file: Option<PathBuf>,
    },
}

/// Runs the parsed command line to completion.
pub async fn run(cli: Cli) -> ExitCode {
    if matches!(cli.command, Command::Serve { .. } | Command::Mcp) {
        return serve(cli).await;
    }
    let json_out = cli.json || matches!(cli.command, Command::Tool { .. } | Command::Tools);
    match execute(cli).await {
        Ok((value, code)) => {
            if let Some((name, value)) = value {
                if json_out {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&value).unwrap_or_default()
                    );
                } else {
                    print!("{}", render(&name, &value));
                }
            }
            code
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit_code(&e)
        }
    }
}

fn exit_code(e: &Error) -> ExitCode {
    ExitCode::from(match e.kind() {
        ErrorKind::InvalidInput
        | ErrorKind::NotFound
        | ErrorKind::Unauthorized
        | ErrorKind::Forbidden => 2,
        ErrorKind::Conflict | ErrorKind::Unavailable => 3,
        ErrorKind::Internal => 1,
    })
}

type Outcome = Option<(String, Value)>;

/// The context the global flags describe, with `--settings` applied for the local user.
/// The CLI reads Gmail only with `--gmail`; a server also reads it whenever Gmail
/// credentials are configured. A local source flag always wins.
async fn context(cli: &Cli, server: bool) -> Result<Context, Error> {
    let source = match (&cli.mbox, &cli.maildir, &cli.eml_dir) {
        (Some(p), _, _) => SourceConfig::Mbox(p.clone()),
        (_, Some(p), _) => SourceConfig::Maildir(p.clone()),
        (_, _, Some(p)) => SourceConfig::EmlDir(p.clone()),
        _ => SourceConfig::None,
    };
    let gmail = if cli.gmail {
        Some(Config::gmail_from_env()?.ok_or_else(|| {
            Error::invalid(
                "--gmail",
                "Gmail is not configured: run `billable auth gmail --client-secret FILE` and set \
                 GMAIL_CLIENT_SECRET_FILE, or set GMAIL_ACCESS_TOKEN or GMAIL_SERVICE_ACCOUNT_FILE",
            )
        })?)
    } else if server && source == SourceConfig::None {
        Config::gmail_from_env()?
    } else {
        None
    };
    let config = Config {
        db: cli.db.clone(),
        source,
        gmail,
        analyzer: cli.analyzer.map(|a| match a {
            AnalyzerArg::Rules => AnalyzerChoice::Rules,
            AnalyzerArg::Llm => AnalyzerChoice::Llm,
        }),
        llm: LlmConfig::from_env()?,
        supabase_url: env_var("SUPABASE_URL"),
        supabase_rest_url: env_var("SUPABASE_REST_URL"),
        supabase_anon_key: env_var("SUPABASE_ANON_KEY").map(Secret::new),
        supabase_access_token: env_var("SUPABASE_ACCESS_TOKEN").map(Secret::new),
        database_url: env_var("DATABASE_URL").map(Secret::new),
        ..Config::default()
    };
    let ctx = Context::from_config(&config)?;
    if let Some(path) = &cli.settings {
        let text = read_text(path, "settings")?;
        let patch: Value = serde_json::from_str(&text).map_err(|e| {
            Error::invalid("--settings", format!("{} is not JSON: {e}", path.display()))
        })?;
        let args = json!({ "settings": patch });
        tools::call(
            &ctx,
            &local_user(),
            "configure_time_tracking",
            args,
            &NoProgress,
        )
        .await?;
    }
    Ok(ctx)
}

async fn execute(cli: Cli) -> Result<(Outcome, ExitCode), Error> {
    let (name, args) = match &cli.command {
        Command::Tools => {
            return Ok((
                Some(("tools".to_owned(), tools::openai_tools())),
                ExitCode::SUCCESS,
            ));
        }
        Command::Auth { provider } => return auth(provider).await,
        Command::Migrate { no_compat } => return migrate(*no_compat).await,
        command => to_tool_call(command)?,
    };
    let ctx = context(&cli, false).await?;
    let user = local_user();
    let bar = (name == "scan_billable_time" && std::io::stderr().is_terminal()).then(Bar::new);
    let progress: &dyn Progress = match &bar {
        Some(b) => b,
        None => &NoProgress,
    };
    let result = tools::call(&ctx, &user, &name, args, progress).await;
    if let Some(b) = bar {
        b.0.finish_and_clear();
    }
    let result = result?;
    let code = if result.get("status").and_then(Value::as_str) == Some("interrupted") {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    };
    Ok((Some((name, result)), code))
}

/// `billable auth gmail`: the installed-app flow, tokens stored 0600.
async fn auth(provider: &AuthProvider) -> Result<(Outcome, ExitCode), Error> {
    let AuthProvider::Gmail {
        client_secret,
        token_file,
    } = provider;
    let token_file = match token_file {
        Some(t) => t.clone(),
        None => crate::mail::gmail::auth::default_token_file().ok_or_else(|| {
            Error::invalid(
                "--token-file",
                "no config directory could be determined; give one",
            )
        })?,
    };
    crate::mail::gmail::auth::authorize(client_secret, &token_file, None).await?;
    eprintln!(
        "Gmail authorised (read-only). Tokens stored in {} (readable only by you). \
         Scan with `billable --gmail scan` and GMAIL_CLIENT_SECRET_FILE set.",
        token_file.display()
    );
    Ok((None, ExitCode::SUCCESS))
}

/// The CLI's user. With Supabase it acts as the user whose JWT it was given
/// (`SUPABASE_ACCESS_TOKEN`), and row-level security does the rest.
fn local_user() -> UserId {
    match env_var("SUPABASE_ACCESS_TOKEN") {
        Some(token) => UserId::local().with_token(token),
        None => UserId::local(),
    }
}

/// A non-empty environment variable.
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `billable migrate`: applies sql/ to DATABASE_URL and prints what it did.
async fn migrate(no_compat: bool) -> Result<(Outcome, ExitCode), Error> {
    let url = env_var("DATABASE_URL").ok_or_else(|| {
        Error::invalid(
            "DATABASE_URL",
            "set DATABASE_URL to the Postgres to migrate, e.g. postgres://postgres@localhost:5432/billable",
        )
    })?;
    let compat = if no_compat {
        crate::migrate::Compat::Skip
    } else {
        crate::migrate::Compat::Auto
    };
    let report = crate::migrate::migrate(&url, compat).await?;
    let value = serde_json::to_value(&report).unwrap_or(Value::Null);
    Ok((Some(("migrate".to_owned(), value)), ExitCode::SUCCESS))
}

fn read_text(path: &PathBuf, what: &str) -> Result<String, Error> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    text.map_err(|e| Error::invalid(what, format!("could not read {}: {e}", path.display())))
}

/// Turns a command into the tool call it stands for.
fn to_tool_call(command: &Command) -> Result<(String, Value), Error> {
    fn put<T: serde::Serialize>(map: &mut Map<String, Value>, key: &str, value: Option<T>) {
        if let Some(v) = value {
            map.insert(
                key.to_owned(),
                serde_json::to_value(v).unwrap_or(Value::Null),
            );
        }
    }
    let mut m = Map::new();
    let name = match command {
        Command::Scan {
            query,
            after,
            before,
            max_messages,
            dry_run,
            reanalyze,
        } => {
            put(&mut m, "query", query.as_ref());
            put(&mut m, "after", after.as_ref());
            put(&mut m, "before", before.as_ref());
            put(&mut m, "max_messages", *max_messages);
            put(&mut m, "dry_run", dry_run.then_some(true));
            put(&mut m, "reanalyze", reanalyze.then_some(true));
            "scan_billable_time"
        }
        Command::Analyze { file, id, save } => {
            match (file, id) {
                (Some(path), _) => put(&mut m, "raw_email", Some(read_text(path, "file")?)),
                (None, Some(id)) => put(&mut m, "message_id", Some(id)),
                (None, None) => {
                    return Err(Error::invalid(
                        "file",
                        "give an .eml file (or - for standard input) or --id",
                    ));
                }
            }
            put(&mut m, "save", save.then_some(true));
            "analyze_time_entry"
        }
        Command::Summary {
            from,
            to,
            group_by,
            billable_only,
        } => {
            put(&mut m, "from", from.as_ref());
            put(&mut m, "to", to.as_ref());
            put(
                &mut m,
                "group_by",
                Some(format!("{group_by:?}").to_lowercase()),
            );
            put(&mut m, "billable_only", billable_only.then_some(true));
            "get_time_tracking_summary"
        }
        Command::Entries {
            from,
            to,
            client,
            status,
            limit,
            offset,
        } => {
            put(&mut m, "from", from.as_ref());
            put(&mut m, "to", to.as_ref());
            put(&mut m, "client", client.as_ref());
            put(
                &mut m,
                "status",
                status.map(|s| match s {
                    StatusArg::Suggested => "suggested",
                    StatusArg::NeedsReview => "needs_review",
                    StatusArg::Approved => "approved",
                    StatusArg::Rejected => "rejected",
                }),
            );
            put(&mut m, "limit", *limit);
            put(&mut m, "offset", *offset);
            "list_time_entries"
        }
        Command::Configure { set } => {
            if !set.is_empty() {
                let mut settings = Map::new();
                for kv in set {
                    let Some((k, v)) = kv.split_once('=') else {
                        return Err(Error::invalid("--set", format!("`{kv}` is not KEY=VALUE")));
                    };
                    // JSON when it parses (numbers, lists, objects), else a plain string.
                    let value =
                        serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned()));
                    settings.insert(k.trim().to_owned(), value);
                }
                m.insert("settings".to_owned(), Value::Object(settings));
            }
            "configure_time_tracking"
        }
        Command::Tool { name, args } => {
            let args = match args.as_deref() {
                None => Value::Object(Map::new()),
                Some(text) => {
                    let text = if text == "-" {
                        read_text(&PathBuf::from("-"), "arguments")?
                    } else {
                        text.to_owned()
                    };
                    serde_json::from_str(&text)
                        .map_err(|e| Error::invalid("arguments", format!("not valid JSON: {e}")))?
                }
            };
            return Ok((name.clone(), args));
        }
        Command::Tools => "tools",
        Command::Auth { .. } | Command::Serve { .. } | Command::Mcp | Command::Migrate { .. } => {
            return Err(Error::invalid(
                "command",
                "auth, serve, mcp and migrate are not tool calls",
            ));
        }
    };
    Ok((name.to_owned(), Value::Object(m)))
}

/// `serve` and `mcp`: long-running servers over the same context and tools.
async fn serve(cli: Cli) -> ExitCode {
    let result: anyhow::Result<()> = async {
        let mut server = crate::config::ServerConfig::from_env()?;
        let ctx = std::sync::Arc::new(context(&cli, true).await?);
        match cli.command {
            Command::Serve { bind } => {
                if let Some(bind) = bind {
                    server.bind = bind;
                }
                crate::http::serve(ctx, &server).await
            }
            _ => crate::mcp::serve_stdio(ctx).await,
        }
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            match e.downcast_ref::<Error>() {
                Some(e) => exit_code(e),
                None => ExitCode::FAILURE,
            }
        }
    }
}

/// A spinner with counts on stderr; only shown on a terminal.
struct Bar(indicatif::ProgressBar);

impl Bar {
    fn new() -> Self {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Bar(bar)
    }
}

impl Progress for Bar {
    fn report(&self, p: &ScanProgress) {
        self.0.set_message(format!(
            "{} examined, {} skipped, {} analyzed, {} new entries, {} errors",
            p.examined, p.skipped, p.analyzed, p.entries, p.errors
        ));
    }
}

// ---- human output -------------------------------------------------------------------

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn money(v: &Value) -> String {
    format!("{:.2}", v.as_f64().unwrap_or(0.0))
}

fn hours(minutes: u64) -> String {
    format!("{:.1}h", minutes as f64 / 60.0)
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(max - 1).collect::<String>())
    }
}

/// A plain text table; numeric-looking columns are right-aligned.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let numeric: Vec<bool> = (0..headers.len())
        .map(|i| {
            !rows.is_empty()
                && rows
                    .iter()
                    .all(|r| r[i].trim_end_matches('h').parse::<f64>().is_ok())
        })
        .collect();
    let line = |cells: Vec<&str>| -> String {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if numeric[i] {
                    format!("{c:>w$}", w = widths[i])
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        format!("{}\n", parts.join("  ").trim_end())
    };
    let mut out = line(headers.to_vec());
    out.push_str(&line(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
    ));
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn entry_rows(entries: &[Value]) -> Vec<Vec<String>> {
    entries
        .iter()
        .map(|e| {
            vec![
                s(&e["work_date"]),
                s(&e["client"]),
                s(&e["activity"]),
                format!("{}", e["billed_minutes"].as_u64().unwrap_or(0)),
                money(&e["amount"]),
                s(&e["status"]),
                clip(&s(&e["description"]), 60),
            ]
        })
        .collect()
}

const ENTRY_HEADERS: [&str; 7] = [
    "date",
    "client",
    "activity",
    "min",
    "amount",
    "status",
    "description",
];

fn render(name: &str, v: &Value) -> String {
    match name {
        "scan_billable_time" => render_scan(v),
        "list_time_entries" => {
            let entries = v["entries"].as_array().cloned().unwrap_or_default();
            let total = v["total"].as_u64().unwrap_or(0);
            let offset = v["offset"].as_u64().unwrap_or(0);
            if entries.is_empty() {
                return format!("No entries (total {total}).\n");
            }
            format!(
                "{}\nShowing {}–{} of {total}.\n",
                table(&ENTRY_HEADERS, &entry_rows(&entries)),
                offset + 1,
                offset + entries.len() as u64
            )
        }
        "get_time_tracking_summary" => {
            let rows = |groups: &Value| -> Vec<Vec<String>> {
                groups
                    .as_array()
                    .map(|gs| {
                        gs.iter()
                            .map(|g| {
                                vec![
                                    s(&g["key"]),
                                    s(&g["entries"]),
                                    format!("{:.1}", g["raw_minutes"].as_f64().unwrap_or(0.0)),
                                    format!("{:.2}", g["billed_hours"].as_f64().unwrap_or(0.0)),
                                    money(&g["amount"]),
                                    s(&g["currency"]),
                                ]
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let mut all = rows(&v["groups"]);
            if all.is_empty() {
                return "No entries in this period.\n".to_owned();
            }
            all.extend(rows(&v["total"]));
            let by = s(&v["group_by"]);
            table(
                &[
                    by.as_str(),
                    "entries",
                    "raw min",
                    "billed h",
                    "amount",
                    "cur",
                ],
                &all,
            )
        }
        "analyze_time_entry" => {
            let mut out = format!("message {}: {}\n", s(&v["message_id"]), s(&v["outcome"]));
            if v["entry"].is_object() {
                out.push_str(&table(
                    &ENTRY_HEADERS,
                    &entry_rows(std::slice::from_ref(&v["entry"])),
                ));
            }
            for r in v["reasons"].as_array().into_iter().flatten() {
                out.push_str(&format!("  - {}\n", s(r)));
            }
            if v["saved"] == true {
                out.push_str("saved\n");
            }
            out
        }
        "migrate" => {
            let list = |k: &str| {
                let names: Vec<String> = v[k].as_array().into_iter().flatten().map(s).collect();
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            };
            format!(
                "applied: {}\nskipped: {}\nalready applied: {}\n",
                list("applied"),
                list("skipped"),
                list("already")
            )
        }
        _ => format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default()),
    }
}

fn render_scan(v: &Value) -> String {
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    let mut out = String::new();
    let entries = v["entries"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        out.push_str("No new entries.");
        if n("skipped_already_processed") > 0 {
            out.push_str(" Messages already processed were skipped; `billable entries` lists what was found before.");
        }
        out.push('\n');
    } else {
        out.push_str(&table(&ENTRY_HEADERS, &entry_rows(&entries)));
        if n("entries_created") > entries.len() as u64 {
            out.push_str(&format!(
                "… and {} more (`billable entries`).\n",
                n("entries_created") - entries.len() as u64
            ));
        }
        // Per-client totals of the entries shown.
        let mut totals: BTreeMap<String, (u64, u64, f64)> = BTreeMap::new();
        for e in &entries {
            let t = totals.entry(s(&e["client"])).or_default();
            t.0 += 1;
            t.1 += e["billed_minutes"].as_u64().unwrap_or(0);
            t.2 += e["amount"].as_f64().unwrap_or(0.0);
        }
        let mut rows: Vec<Vec<String>> = totals
            .iter()
            .map(|(c, (k, m, a))| vec![c.clone(), k.to_string(), hours(*m), format!("{a:.2}")])
            .collect();
        rows.push(vec![
            "total".into(),
            n("entries_created").to_string(),
            hours(n("billed_minutes")),
            money(&v["amount"]),
        ]);
        out.push('\n');
        out.push_str(&table(&["client", "entries", "billed", "amount"], &rows));
    }
    out.push_str(&format!(
        "\n{} examined · {} already processed · {} automated · {} analyzed · {} new entries · {} not billable · {} errors · {} ms{}\n",
        n("examined"),
        n("skipped_already_processed"),
        n("skipped_automated"),
        n("analyzed"),
        n("entries_created"),
        n("not_billable"),
        n("errors_total"),
        n("elapsed_ms"),
        if v["dry_run"] == true { " · dry run, nothing saved" } else { "" },
    ));
    for e in v["errors"].as_array().into_iter().flatten().take(10) {
        out.push_str(&format!(
            "  error {}: {}\n",
            s(&e["message_id"]),
            s(&e["reason"])
        ));
    }
    let domains: Vec<String> = v["unmatched_domains"]
        .as_array()
        .into_iter()
        .flatten()
        .take(5)
        .map(|d| format!("{} ({})", s(&d["domain"]), s(&d["messages"])))
        .collect();
    if !domains.is_empty() {
        out.push_str(&format!(
            "Mail with no client: {}. Add clients with `billable configure --set clients='[{{\"name\":\"…\",\"domains\":[\"…\"]}}]'`.\n",
            domains.join(", ")
        ));
    }
    if let Some(reason) = v["stopped_reason"].as_str() {
        out.push_str(&format!(
            "Scan interrupted: {reason}. What was done is saved; run the scan again to resume.\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_refused_token_exits_2_and_a_conflicting_write_3() {
        use crate::store::StoreError;
        let code = |e: StoreError| exit_code(&Error::from(e));
        assert_eq!(
            code(StoreError::Unauthorized("JWT expired".into())),
            ExitCode::from(2)
        );
        assert_eq!(code(StoreError::Forbidden("RLS".into())), ExitCode::from(2));
        assert_eq!(
            code(StoreError::Conflict {
                what: "save entries",
                message: "duplicate key".into()
            }),
            ExitCode::from(3)
        );
    }

    #[test]
    fn configure_set_values_are_json_or_strings() {
        let (name, args) = to_tool_call(&Command::Configure {
            set: vec![
                "timezone=Europe/Paris".into(),
                "billing_increment_minutes=15".into(),
                "my_addresses=[\"a@b.com\"]".into(),
            ],
        })
        .unwrap();
        assert_eq!(name, "configure_time_tracking");
        assert_eq!(
            args,
            json!({"settings": {"timezone": "Europe/Paris", "billing_increment_minutes": 15, "my_addresses": ["a@b.com"]}})
        );
    }

    #[test]
    fn tables_align_numbers_right() {
        let t = table(
            &["name", "n"],
            &[vec!["a".into(), "5".into()], vec!["bb".into(), "10".into()]],
        );
        assert_eq!(t, "name   n\n----  --\na      5\nbb    10\n");
    }
}
