//! The command line: clap definitions that build each tool's typed `Args`, and its
//! typed `Output` printed as tables (`render`) or JSON with `--json`. Exit codes:
//! 0 success, 2 bad input, 3 a dependency unavailable or a scan interrupted, 1 anything
//! else.

mod eval;
mod export;
mod ids;
mod render;
mod review;
mod words;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};

use crate::config::{AnalyzerChoice, Config, SourceConfig};
use crate::context::Context;
use crate::domain::{Activity, EntryStatus, GroupBy, UserId, WorkDate};
use crate::error::{Error, ErrorKind};
use crate::store::ScanStatus;
use crate::tools::{
    self, NoProgress, Progress, ScanProgress, add, analyze, configure, list, merge, scan, summary,
    update,
};

#[derive(Debug, Parser)]
#[command(
    name = "billable",
    version,
    about = "Finds the billable work hidden in a mailbox."
)]
pub struct Cli {
    /// SQLite file for entries and settings [env: BILLABLE_DB; default: billable.sqlite3 in your data directory]
    #[arg(long, global = true, value_name = "PATH")]
    pub db: Option<PathBuf>,
    // Where mail comes from, before the command (`billable --mbox FILE scan`); the
    // commands that read mail also take it after their name.
    #[command(flatten)]
    pub mail: MailArgs,
    /// Use these settings for this run only: a JSON object of settings to change, as for
    /// `configure` (e.g. {"timezone": "Europe/Paris", "clients": [...]}); `configure` stores
    /// them, other commands only with --save
    #[arg(long, global = true, value_name = "FILE")]
    pub settings: Option<PathBuf>,
    /// With --settings: store the file's settings as yours, not just for this run (give it
    /// before the command: `billable --settings FILE --save scan`)
    #[arg(long, requires = "settings")]
    pub save: bool,
    /// Print JSON instead of tables
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The mail source and the analyzer: options only for the commands that read mail
/// (scan, analyze, review, tool, serve, mcp).
#[derive(Debug, Clone, Default, Args)]
pub struct MailArgs {
    /// Read mail from an mbox file, e.g. a Google Takeout export [env: BILLABLE_MBOX]
    #[arg(long, value_name = "FILE", conflicts_with_all = ["maildir", "eml_dir"])]
    pub mbox: Option<PathBuf>,
    /// Read mail from a Maildir folder [env: BILLABLE_MAILDIR]
    #[arg(long, value_name = "DIR", conflicts_with = "eml_dir")]
    pub maildir: Option<PathBuf>,
    /// Read mail from a folder of .eml files [env: BILLABLE_EML_DIR]
    #[arg(long, value_name = "DIR")]
    pub eml_dir: Option<PathBuf>,
    /// Read mail from Gmail (credentials from GMAIL_* variables; see `billable auth gmail`)
    #[arg(long, conflicts_with_all = ["mbox", "maildir", "eml_dir"])]
    pub gmail: bool,
    /// Which analyzer runs [default: llm when OPENAI_API_KEY or OPENAI_BASE_URL is set, else rules]
    #[arg(long, value_enum)]
    pub analyzer: Option<AnalyzerArg>,
}

impl MailArgs {
    /// The first option given, as typed, or None.
    fn given(&self) -> Option<&'static str> {
        [
            (self.mbox.is_some(), "--mbox"),
            (self.maildir.is_some(), "--maildir"),
            (self.eml_dir.is_some(), "--eml-dir"),
            (self.gmail, "--gmail"),
            (self.analyzer.is_some(), "--analyzer"),
        ]
        .into_iter()
        .find_map(|(set, flag)| set.then_some(flag))
    }
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
    Status,
    Day,
    Week,
    Month,
}

impl From<GroupByArg> for GroupBy {
    fn from(g: GroupByArg) -> GroupBy {
        match g {
            GroupByArg::Client => GroupBy::Client,
            GroupByArg::Matter => GroupBy::Matter,
            GroupByArg::Status => GroupBy::Status,
            GroupByArg::Day => GroupBy::Day,
            GroupByArg::Week => GroupBy::Week,
            GroupByArg::Month => GroupBy::Month,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusArg {
    Suggested,
    // One spelling everywhere (JSON's); the kebab one clap would make is an alias.
    #[value(name = "needs_review", alias = "needs-review")]
    NeedsReview,
    Approved,
    Rejected,
}

impl From<StatusArg> for EntryStatus {
    fn from(s: StatusArg) -> EntryStatus {
        match s {
            StatusArg::Suggested => EntryStatus::Suggested,
            StatusArg::NeedsReview => EntryStatus::NeedsReview,
            StatusArg::Approved => EntryStatus::Approved,
            StatusArg::Rejected => EntryStatus::Rejected,
        }
    }
}

/// A `YYYY-MM-DD` flag value.
fn date(s: &str) -> Result<WorkDate, String> {
    WorkDate::parse(s)
}

/// An `--activity` value, spelled as in JSON (`email_sent`; `email-sent` is read too).
fn activity(s: &str) -> Result<Activity, String> {
    serde_json::from_value(Value::String(s.to_owned()))
        .map_err(|_| "expected call, meeting, email_sent, email_received or other".to_owned())
}

/// What `billable edit` changes: at least one flag (clap says which exist).
#[derive(Debug, Args)]
#[group(required = true, multiple = true)]
pub struct EditFlags {
    /// Set the client (a configured client's name); the matter becomes its only matter
    /// unless --matter is given
    #[arg(long, value_name = "NAME")]
    client: Option<String>,
    /// Set the matter (one of the client's matter ids); '' clears it
    #[arg(long, value_name = "ID")]
    matter: Option<String>,
    /// Set the description as it should appear on the invoice
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    description: Option<String>,
    /// Set the minutes to bill (a multiple of the billing increment)
    #[arg(long, value_name = "N")]
    minutes: Option<u32>,
    /// Set the day the work was done
    #[arg(long, value_parser = date, value_name = "YYYY-MM-DD")]
    date: Option<WorkDate>,
    /// Whether the work is charged
    #[arg(long, value_name = "true|false")]
    billable: Option<bool>,
    /// Set the UTBMS task code, e.g. L120; '' clears it
    #[arg(long, value_name = "CODE")]
    task_code: Option<String>,
    /// Set the UTBMS activity code, e.g. A104; '' clears it
    #[arg(long, value_name = "CODE")]
    activity_code: Option<String>,
    /// Set the review status
    #[arg(long, value_enum)]
    status: Option<StatusArg>,
}

impl From<EditFlags> for update::Changes {
    fn from(f: EditFlags) -> update::Changes {
        update::Changes {
            status: f.status.map(Into::into),
            client: f.client,
            matter: f.matter,
            description: f.description,
            billed_minutes: f.minutes,
            work_date: f.date,
            billable: f.billable,
            task_code: f.task_code,
            activity_code: f.activity_code,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan the mailbox and save suggested time entries
    Scan {
        /// Gmail-style query, e.g. 'from:acme.com subject:contract' [default: the
        /// default_query setting]
        #[arg(long, value_name = "QUERY")]
        query: Option<String>,
        /// Only messages dated on or after this day (YYYY-MM-DD)
        #[arg(long, value_parser = date, value_name = "YYYY-MM-DD")]
        after: Option<WorkDate>,
        /// Only messages dated before this day (YYYY-MM-DD)
        #[arg(long, value_parser = date, value_name = "YYYY-MM-DD")]
        before: Option<WorkDate>,
        /// Stop after examining this many messages (a whole number, 1 or more)
        #[arg(long = "max", value_name = "N")]
        max_messages: Option<u64>,
        /// Analyze and report without saving
        #[arg(long)]
        dry_run: bool,
        /// Analyze messages again even if already processed
        #[arg(long)]
        reanalyze: bool,
        #[command(flatten)]
        mail: MailArgs,
    },
    /// Analyze one message (an .eml file, or --id from the mail source)
    Analyze {
        /// An RFC 5322 message file; `-` reads standard input
        file: Option<PathBuf>,
        /// A message id from the mail source instead of a file (a Gmail id, or the
        /// Message-ID header without angle brackets)
        #[arg(long, conflicts_with = "file", value_name = "ID")]
        id: Option<String>,
        /// Save the proposed entry
        #[arg(long)]
        save: bool,
        #[command(flatten)]
        mail: MailArgs,
    },
    /// Totals for a period
    Summary {
        /// First work date included (YYYY-MM-DD)
        #[arg(long, value_parser = date, value_name = "YYYY-MM-DD")]
        from: Option<WorkDate>,
        /// Last work date included (YYYY-MM-DD)
        #[arg(long, value_parser = date, value_name = "YYYY-MM-DD")]
        to: Option<WorkDate>,
        /// How to group the totals
        #[arg(long, value_enum, default_value = "client")]
        group_by: GroupByArg,
        /// Count only billable entries
        #[arg(long)]
        billable_only: bool,
        /// Only entries with this review status [default: all but rejected]
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        /// Only this matter's entries (its id as configured)
        #[arg(long, value_name = "ID")]
        matter: Option<String>,
    },
    /// List time entries, newest first
    Entries {
        /// First work date included (YYYY-MM-DD)
        #[arg(long, value_parser = date, value_name = "YYYY-MM-DD")]
        from: Option<WorkDate>,
        /// Last work date included (YYYY-MM-DD)
        #[arg(long, value_parser = date, value_name = "YYYY-MM-DD")]
        to: Option<WorkDate>,
        /// Only this client's entries (its name as configured)
        #[arg(long, value_name = "NAME")]
        client: Option<String>,
        /// Only entries with this review status
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        /// Only this matter's entries (its id as configured)
        #[arg(long, value_name = "ID")]
        matter: Option<String>,
        /// How many entries to show (1 to 500) [default: 50]
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        /// How many of the newest entries to skip first [default: 0]
        #[arg(long, value_name = "N")]
        offset: Option<u32>,
        /// Print whole descriptions instead of fitting the table to the terminal
        #[arg(long)]
        wide: bool,
    },
    /// Approve entries, by the ids `billable entries` shows (or whole ids)
    Approve {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
    /// Reject entries, by the ids `billable entries` shows (or whole ids)
    Reject {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
    /// Change entries: every flag given applies to every ID; all or nothing
    Edit {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
        #[command(flatten)]
        changes: EditFlags,
    },
    /// Add an entry by hand for work that left no mail (approved, as you entered it)
    Add {
        /// A configured client's name
        #[arg(long, value_name = "NAME")]
        client: String,
        /// The day the work was done
        #[arg(long, value_parser = date, value_name = "YYYY-MM-DD")]
        date: WorkDate,
        /// Minutes to bill (a multiple of the billing increment)
        #[arg(long, value_name = "N")]
        minutes: u32,
        /// The description as it should appear on the invoice
        #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
        description: String,
        /// One of the client's matter ids [default: its only matter]
        #[arg(long, value_name = "ID")]
        matter: Option<String>,
        /// call, meeting, email_sent, email_received or other [default: call]
        #[arg(long, value_parser = activity, value_name = "ACTIVITY")]
        activity: Option<Activity>,
        /// UTBMS activity code, e.g. A106
        #[arg(long, value_name = "CODE")]
        activity_code: Option<String>,
        /// UTBMS task code, e.g. L120 [default: the matter's, when it uses task codes]
        #[arg(long, value_name = "CODE")]
        task_code: Option<String>,
        /// Recorded but not charged
        #[arg(long)]
        not_billable: bool,
    },
    /// Merge entries of one client and matter into one, their minutes (as you edited
    /// them) summed and rounded once, never billing more than the entries did
    Merge {
        #[arg(required = true, num_args = 2.., value_name = "ID")]
        ids: Vec<String>,
        /// The merged entry's description [default: the parts' joined]
        #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
        description: Option<String>,
        /// The day the merged entry is billed on; needed when the entries are on
        /// different days
        #[arg(long, value_parser = date, value_name = "YYYY-MM-DD")]
        date: Option<WorkDate>,
    },
    /// Undo a merge: restore the entries a merged entry was made of
    Split {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Export approved entries as a file for a billing system (csv, ledes1998b,
    /// harvest_csv, toggl_csv); each entry is exported once
    Export(export::ExportArgs),
    /// Walk through the entries awaiting review one at a time, oldest first (needs a
    /// terminal): a approve, r reject, m minutes, d description, s skip, u undo, w why,
    /// o open the message (with the mail source, e.g. --mbox), ? help, q quit
    Review {
        /// First work date included (YYYY-MM-DD)
        #[arg(long, value_parser = date, value_name = "YYYY-MM-DD")]
        from: Option<WorkDate>,
        /// Last work date included (YYYY-MM-DD)
        #[arg(long, value_parser = date, value_name = "YYYY-MM-DD")]
        to: Option<WorkDate>,
        /// Only this client's entries (its name as configured)
        #[arg(long, value_name = "NAME")]
        client: Option<String>,
        #[command(flatten)]
        mail: MailArgs,
    },
    /// Measure billable on labelled mail: scan it into a throwaway store and score the
    /// entries against the labels (docs/eval.md); the last line holds the figures
    Eval(eval::EvalArgs),
    /// Show settings, or change them with --set, --add and --remove
    #[command(after_help = settings_keys_help())]
    Configure {
        /// Set a setting: KEY=VALUE, VALUE as JSON (numbers, lists, objects) or a plain
        /// string, e.g. timezone=Europe/Paris or clients='[{"name":"Acme","domains":["acme.com"]}]';
        /// default_query= (empty) clears the default query
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Add one item to a list setting: clients='{"name":"Acme","domains":["acme.com"]}',
        /// my_addresses=me@firm.com, ignore_senders='*@news.example'
        #[arg(long = "add", value_name = "KEY=VALUE")]
        add: Vec<String>,
        /// Remove one item from a list setting: clients=NAME, my_addresses=ADDRESS,
        /// ignore_senders=PATTERN
        #[arg(long = "remove", value_name = "KEY=VALUE")]
        remove: Vec<String>,
    },
    /// Run any tool with JSON arguments and print its JSON result
    #[command(after_help = tools_help())]
    Tool {
        /// The tool's name (listed below)
        name: String,
        /// Arguments as a JSON object; `-` reads standard input [default: {}]
        args: Option<String>,
        #[command(flatten)]
        mail: MailArgs,
    },
    /// Print the OpenAI `tools` array, or with --write regenerate tools/*.json from the types
    Tools {
        /// Write one OpenAI strict-mode definition per tool into DIR (default: tools)
        #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = "tools")]
        write: Option<PathBuf>,
    },
    /// Serve the tools over HTTP (OpenAI function calling at /v1, MCP at /mcp)
    Serve {
        /// Address to listen on, HOST:PORT [env: BILLABLE_BIND; default: 127.0.0.1:8787]
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
        #[command(flatten)]
        mail: MailArgs,
    },
    /// Serve the tools over MCP on stdin/stdout (for Claude Desktop, IDEs, agents)
    Mcp {
        #[command(flatten)]
        mail: MailArgs,
    },
    /// Run background scans: take scan jobs from the queue and scan as each job's user.
    /// Run any number, on any number of machines; on Supabase each needs DATABASE_URL
    /// (as the billable_worker role) and SUPABASE_JWT_SECRET
    Worker {
        /// Seconds a job stays leased without a heartbeat: a crashed worker's job
        /// waits this long before another resumes it [default: 30]
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(3..=3600))]
        lease_secs: Option<u64>,
        /// Scans this worker runs at once, each for a different user: scans wait on
        /// each user's Gmail quota, not on the machine, so one worker keeps many
        /// users' scans going [default: 16]
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
        jobs: Option<u32>,
        #[command(flatten)]
        mail: MailArgs,
    },
    /// Scheduled scans (each user's `schedule` setting)
    Schedule {
        #[command(subcommand)]
        action: ScheduleAction,
    },
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
pub enum ScheduleAction {
    /// Queue a scan of new mail for every user whose scheduled run is due and not yet
    /// queued (workers do this every minute; a slot is queued once). On Supabase it
    /// needs DATABASE_URL as the billable_worker role
    RunNow {
        /// Judge what is due as of this time (RFC 3339) instead of now
        #[arg(long, value_name = "TIME")]
        at: Option<chrono::DateTime<chrono::Utc>>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuthProvider {
    /// Let billable read your Gmail (scope gmail.readonly only): opens Google's consent
    /// page and stores the tokens, readable only by you, in your config directory
    Gmail {
        /// The OAuth client secret (Desktop app) downloaded from Google Cloud [env: GMAIL_CLIENT_SECRET_FILE]
        #[arg(long, value_name = "FILE")]
        client_secret: Option<PathBuf>,
        /// Where to store the tokens [env: GMAIL_TOKEN_FILE; default: gmail-token.json in your config directory]
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
    },
}

impl Cli {
    /// The command line with the mail options given after a command moved to the top,
    /// where the rest of the CLI reads them; an option that the command would ignore,
    /// or the mail source given twice, is refused.
    fn resolved(mut self) -> Result<Cli, Error> {
        let after = match &mut self.command {
            Command::Scan { mail, .. }
            | Command::Analyze { mail, .. }
            | Command::Tool { mail, .. }
            | Command::Serve { mail, .. }
            | Command::Worker { mail, .. }
            | Command::Eval(eval::EvalArgs { mail, .. })
            | Command::Review { mail, .. }
            | Command::Mcp { mail } => Some(std::mem::take(mail)),
            _ => None,
        };
        let name = self.command.name();
        match after {
            Some(after) => {
                if let (Some(_), Some(flag)) = (self.mail.given(), after.given()) {
                    return Err(Error::invalid(
                        flag,
                        "give the mail source and analyzer either before the command or after \
                         it, not both",
                    ));
                }
                if after.given().is_some() {
                    self.mail = after;
                }
            }
            None => {
                if let Some(flag) = self.mail.given() {
                    return Err(Error::invalid(
                        flag,
                        format!(
                            "`{name}` reads no mail, so {flag} would be ignored; it is for scan, \
                             analyze, review, tool, serve and mcp"
                        ),
                    ));
                }
            }
        }
        let store_free = matches!(
            self.command,
            Command::Tools { .. } | Command::Migrate { .. } | Command::Auth { .. }
        );
        if store_free {
            let why = match self.command {
                Command::Migrate { .. } => "it migrates the Postgres database in DATABASE_URL",
                _ => "it uses no settings or entries",
            };
            for (set, flag) in [
                (self.db.is_some(), "--db"),
                (self.settings.is_some(), "--settings"),
            ] {
                if set {
                    return Err(Error::invalid(
                        flag,
                        format!("`{name}` takes no {flag}: {why}"),
                    ));
                }
            }
        }
        Ok(self)
    }
}

impl Command {
    /// The command's name as typed.
    fn name(&self) -> &'static str {
        match self {
            Command::Scan { .. } => "scan",
            Command::Analyze { .. } => "analyze",
            Command::Summary { .. } => "summary",
            Command::Entries { .. } => "entries",
            Command::Approve { .. } => "approve",
            Command::Reject { .. } => "reject",
            Command::Edit { .. } => "edit",
            Command::Add { .. } => "add",
            Command::Merge { .. } => "merge",
            Command::Split { .. } => "split",
            Command::Export(_) => "export",
            Command::Review { .. } => "review",
            Command::Eval(_) => "eval",
            Command::Configure { .. } => "configure",
            Command::Tool { .. } => "tool",
            Command::Tools { .. } => "tools",
            Command::Serve { .. } => "serve",
            Command::Mcp { .. } => "mcp",
            Command::Worker { .. } => "worker",
            Command::Migrate { .. } => "migrate",
            Command::Schedule { .. } => "schedule",
            Command::Auth { .. } => "auth",
        }
    }
}

/// Runs the parsed command line to completion.
pub async fn run(cli: Cli) -> ExitCode {
    let json_flag = cli.json;
    let cli = match cli.resolved() {
        Ok(cli) => cli,
        Err(e) => {
            report(&e, json_flag);
            return exit_code(&e);
        }
    };
    if matches!(
        cli.command,
        Command::Serve { .. } | Command::Mcp { .. } | Command::Worker { .. }
    ) {
        return serve(cli).await;
    }
    let json_out = cli.json || matches!(cli.command, Command::Tool { .. } | Command::Tools { .. });
    let api_words = matches!(cli.command, Command::Tool { .. });
    match execute(cli).await {
        Ok(answer) => {
            if let Some(printed) = answer.printed {
                let text = if json_out {
                    let mut json = serde_json::to_string_pretty(&printed.json).unwrap_or_default();
                    json.push('\n');
                    json
                } else {
                    printed.text
                };
                if let Err(e) = write_stdout(&text) {
                    // A reader that stopped early (`| head`) is not an error.
                    if e.kind() != std::io::ErrorKind::BrokenPipe {
                        eprintln!("error: could not write the output: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            answer.code
        }
        Err(e) => {
            report_as(&e, json_out, api_words);
            exit_code(&e)
        }
    }
}

/// Writes a command's answer. What a table shows can come from mail (message ids,
/// reasons, domains), so control characters are shown as escapes, never obeyed; JSON
/// escapes them itself.
fn write_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(crate::domain::text::for_terminal(text).as_bytes())?;
    out.flush()
}

/// An error on stderr: plain text, or with `--json` `{"error":{"code","message"}}`
/// with the codes the HTTP API uses.
fn report(e: &Error, json_out: bool) {
    report_as(e, json_out, false);
}

/// [`report`], in the tools' own words when `api_words` (the `tool` command takes
/// the API's JSON), else in the CLI's (`--minutes`, not `changes.billed_minutes`).
fn report_as(e: &Error, json_out: bool, api_words: bool) {
    let message = if api_words {
        e.to_string()
    } else {
        words::message(e)
    };
    if !json_out {
        eprintln!("error: {}", crate::domain::text::for_terminal(&message));
        return;
    }
    let code = match (e, e.kind()) {
        (Error::UnknownTool { .. }, _) => "unknown_tool",
        (_, ErrorKind::InvalidInput) => "invalid_input",
        (_, ErrorKind::NotFound) => "not_found",
        (_, ErrorKind::Unauthorized) => "unauthorized",
        (_, ErrorKind::Forbidden) => "forbidden",
        (_, ErrorKind::Conflict) => "conflict",
        (_, ErrorKind::Unavailable) => "unavailable",
        (_, ErrorKind::Internal) => "internal",
    };
    eprintln!(
        "{}",
        json!({ "error": { "code": code, "message": message } })
    );
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

/// What a command prints: its typed result as JSON (`--json`) or as text.
struct Printed {
    json: Value,
    text: String,
}

/// A command's result and exit code.
struct Answer {
    printed: Option<Printed>,
    code: ExitCode,
}

impl Answer {
    fn new<T: serde::Serialize>(output: &T, text: String) -> Self {
        Answer {
            printed: Some(Printed {
                json: serde_json::to_value(output).unwrap_or(Value::Null),
                text,
            }),
            code: ExitCode::SUCCESS,
        }
    }

    fn silent() -> Self {
        Answer {
            printed: None,
            code: ExitCode::SUCCESS,
        }
    }
}

/// The configuration the environment (`Config::from_env`) and the global flags
/// describe; a flag wins over its variable. The CLI reads Gmail only with `--gmail`; a
/// server also reads it whenever Gmail credentials are set and no local source is.
fn config(cli: &Cli, server: bool) -> Result<Config, Error> {
    let mut config = Config::from_env()?;
    if let Some(db) = &cli.db {
        config.db = Some(db.clone());
    }
    match (&cli.mail.mbox, &cli.mail.maildir, &cli.mail.eml_dir) {
        (Some(p), _, _) => {
            check_mbox(p)?;
            config.source = SourceConfig::Mbox(p.clone());
        }
        (_, Some(p), _) => config.source = SourceConfig::Maildir(p.clone()),
        (_, _, Some(p)) => config.source = SourceConfig::EmlDir(p.clone()),
        _ => {}
    }
    let gmail = config.gmail.take();
    config.gmail = if cli.mail.gmail {
        Some(gmail.ok_or_else(|| {
            Error::invalid(
                "--gmail",
                "Gmail is not configured: run `billable auth gmail --client-secret FILE` and set \
                 GMAIL_CLIENT_SECRET_FILE, or set GMAIL_ACCESS_TOKEN or GMAIL_SERVICE_ACCOUNT_FILE",
            )
        })?)
    } else if server && config.source == SourceConfig::None {
        gmail
    } else {
        None
    };
    config.analyzer = cli.mail.analyzer.map(|a| match a {
        AnalyzerArg::Rules => AnalyzerChoice::Rules,
        AnalyzerArg::Llm => AnalyzerChoice::Llm,
    });
    Ok(config)
}

/// The context a configuration describes, with `--settings` applied for the local
/// user: for this run only, or stored with `--save` (said on stderr).
async fn context(cli: &Cli, config: &Config) -> Result<Context, Error> {
    let ctx = Context::from_config(config)?;
    let Some(path) = &cli.settings else {
        return Ok(ctx);
    };
    let args = settings_file(path)?;
    let user = local_user(config);
    // `configure` is the command that stores settings, so there the file is stored as
    // asked; elsewhere only with --save.
    if cli.save || matches!(cli.command, Command::Configure { .. }) {
        tools::run::<configure::ConfigureTimeTracking>(&ctx, &user, args, &NoProgress).await?;
        eprintln!(
            "Saved the settings in {} as yours; `billable configure` shows them.",
            path.display()
        );
        return Ok(ctx);
    }
    let stored = ctx.store.settings(&user).await?;
    let settings = match args.settings {
        Some(patch) => {
            patch.within_limit()?;
            stored.apply(patch)?
        }
        None => stored,
    };
    ctx.use_settings_for_run(user, settings);
    Ok(ctx)
}

async fn execute(cli: Cli) -> Result<Answer, Error> {
    match &cli.command {
        Command::Tools { write: None } => {
            let all = tools::openai_tools();
            return Ok(Answer::new(all, format!("{all:#}\n")));
        }
        Command::Tools { write: Some(dir) } => {
            let changed = tools::write_files(dir).map_err(|e| {
                Error::invalid("--write", format!("could not write {}: {e}", dir.display()))
            })?;
            eprintln!(
                "{} tool files in {}; changed: {}",
                tools::TOOLS.len(),
                dir.display(),
                if changed.is_empty() {
                    "none".to_owned()
                } else {
                    changed.join(", ")
                }
            );
            return Ok(Answer::silent());
        }
        Command::Auth { provider } => return auth(&config(&cli, false)?, provider).await,
        // eval builds its own throwaway store, never the one `context` opens.
        Command::Eval(args) => return eval::run(&cli, args).await,
        Command::Migrate { no_compat } => return migrate(&config(&cli, false)?, *no_compat).await,
        Command::Schedule {
            action: ScheduleAction::RunNow { at },
        } => return run_schedules(&config(&cli, false)?, *at).await,
        Command::Serve { .. } | Command::Mcp { .. } | Command::Worker { .. } => {
            return Err(Error::invalid(
                "command",
                "serve and mcp are not tool calls",
            ));
        }
        _ => {}
    }
    let config = config(&cli, false)?;
    let ctx = context(&cli, &config).await?;
    let user = local_user(&config);
    let cli_json = cli.json;
    // Counted only for a scan's bar on a terminal: counting reads a whole mbox.
    let source_messages = (matches!(cli.command, Command::Scan { .. })
        && std::io::stderr().is_terminal())
    .then(|| messages_in_source(&cli))
    .flatten();
    let answer = match cli.command {
        Command::Scan {
            query,
            after,
            before,
            max_messages,
            dry_run,
            reanalyze,
            ..
        } => {
            let args = scan::Args {
                query,
                after,
                before,
                max_messages,
                dry_run: dry_run.then_some(true),
                reanalyze: reanalyze.then_some(true),
                background: Some(false),
            };
            let total = source_messages.map(|n| max_messages.map_or(n, |m| n.min(m)));
            let progress = ScanWatch::start(total);
            let result = tools::run::<scan::ScanBillableTime>(&ctx, &user, args, &progress).await;
            if let Some(b) = &progress.bar {
                b.0.finish_and_clear();
            }
            let Some(out) = result?.done else {
                return Err(Error::invalid(
                    "background",
                    "the CLI's scan runs in the foreground",
                ));
            };
            let mut answer = Answer::new(&out, render::scan(&out, Some(terminal_width(&config))));
            if out.status == ScanStatus::Interrupted {
                answer.code = ExitCode::from(3);
            }
            answer
        }
        Command::Analyze { file, id, save, .. } => {
            let (message_id, raw_email) = match (file, id) {
                (Some(path), _) => (None, Some(read_text(&path, "file")?)),
                (None, Some(id)) => (Some(id), None),
                (None, None) => {
                    return Err(Error::invalid(
                        "file",
                        "give an .eml file (or - for standard input) or --id",
                    ));
                }
            };
            let args = analyze::Args {
                message_id,
                raw_email,
                save: save.then_some(true),
            };
            let out =
                tools::run::<analyze::AnalyzeTimeEntry>(&ctx, &user, args, &NoProgress).await?;
            Answer::new(&out, render::analyze(&out))
        }
        Command::Summary {
            from,
            to,
            group_by,
            billable_only,
            status,
            matter,
        } => {
            let args = summary::Args {
                from,
                to,
                group_by: Some(group_by.into()),
                billable_only: billable_only.then_some(true),
                status: status.map(Into::into),
                matter,
            };
            let out = tools::run::<summary::GetTimeTrackingSummary>(&ctx, &user, args, &NoProgress)
                .await?;
            Answer::new(&out, render::summary(&out))
        }
        Command::Entries {
            from,
            to,
            client,
            status,
            matter,
            limit,
            offset,
            wide,
        } => {
            let args = list::Args {
                from,
                to,
                client,
                status: status.map(Into::into),
                matter,
                limit,
                offset,
            };
            let out = tools::run::<list::ListTimeEntries>(&ctx, &user, args, &NoProgress).await?;
            let width = (!wide).then(|| terminal_width(&config));
            Answer::new(&out, render::entries(&out, width))
        }
        Command::Approve { ids } => {
            let changes = update::Changes {
                status: Some(EntryStatus::Approved),
                ..Default::default()
            };
            updated(&ctx, &user, &ids, changes, "Approved", &config).await?
        }
        Command::Reject { ids } => {
            let changes = update::Changes {
                status: Some(EntryStatus::Rejected),
                ..Default::default()
            };
            updated(&ctx, &user, &ids, changes, "Rejected", &config).await?
        }
        Command::Edit { ids, changes } => {
            updated(&ctx, &user, &ids, changes.into(), "Updated", &config).await?
        }
        Command::Add {
            client,
            date,
            minutes,
            description,
            matter,
            activity,
            activity_code,
            task_code,
            not_billable,
        } => {
            let args = add::Args {
                client,
                matter,
                work_date: date,
                billed_minutes: minutes,
                description,
                activity,
                activity_code,
                task_code,
                billable: not_billable.then_some(false),
                status: None,
            };
            let out = tools::run::<add::AddTimeEntry>(&ctx, &user, args, &NoProgress).await?;
            Answer::new(&out, render::added(&out, Some(terminal_width(&config))))
        }
        Command::Merge {
            ids,
            description,
            date,
        } => {
            let args = merge::MergeArgs {
                ids: ids::resolve(&ctx, &user, &ids).await?,
                description,
                work_date: date,
            };
            let out = tools::run::<merge::MergeTimeEntries>(&ctx, &user, args, &NoProgress).await?;
            Answer::new(&out, render::merged(&out, Some(terminal_width(&config))))
        }
        Command::Split { id } => {
            let id = ids::resolve(&ctx, &user, &[id]).await?.remove(0);
            let args = merge::SplitArgs { id };
            let out = tools::run::<merge::SplitTimeEntry>(&ctx, &user, args, &NoProgress).await?;
            Answer::new(&out, render::split(&out, Some(terminal_width(&config))))
        }
        Command::Export(args) => export::run(&ctx, &user, args, cli_json).await?,
        Command::Review {
            from, to, client, ..
        } => review::run(&ctx, &user, review::Filter { from, to, client }).await?,
        Command::Configure { set, add, remove } => {
            let mut args = configure_args(&set)?;
            if !add.is_empty() || !remove.is_empty() {
                let current = tools::run::<configure::ConfigureTimeTracking>(
                    &ctx,
                    &user,
                    configure::Args { settings: None },
                    &NoProgress,
                )
                .await?;
                let current = serde_json::to_value(&current).unwrap_or(Value::Null);
                let mut patch = match args.settings.take() {
                    Some(p) => serde_json::to_value(p).unwrap_or(Value::Null),
                    None => Value::Object(Map::new()),
                };
                list_changes(&current, &mut patch, &add, &remove)?;
                args = tools::parse_args(json!({ "settings": patch }))?;
            }
            let out =
                tools::run::<configure::ConfigureTimeTracking>(&ctx, &user, args, &NoProgress)
                    .await?;
            Answer::new(&out, render::settings(&out))
        }
        Command::Tool { name, args, .. } => {
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
            let out = tools::call(&ctx, &user, &name, args, &NoProgress).await?;
            let text = format!("{out:#}\n");
            let mut answer = Answer::new(&out, text);
            if out.get("status").and_then(Value::as_str) == Some("interrupted") {
                answer.code = ExitCode::from(3);
            }
            answer
        }
        Command::Tools { .. }
        | Command::Eval(_)
        | Command::Auth { .. }
        | Command::Migrate { .. }
        | Command::Schedule { .. }
        | Command::Serve { .. }
        | Command::Worker { .. }
        | Command::Mcp { .. } => Answer::silent(),
    };
    Ok(answer)
}

/// `approve`, `reject` and `edit`: one `update_time_entries` call over the ids as
/// typed (short ids resolved), all or nothing.
async fn updated(
    ctx: &Context,
    user: &UserId,
    typed: &[String],
    changes: update::Changes,
    done: &str,
    config: &Config,
) -> Result<Answer, Error> {
    let args = update::Args {
        ids: ids::resolve(ctx, user, typed).await?,
        changes,
    };
    let out = tools::run::<update::UpdateTimeEntries>(ctx, user, args, &NoProgress).await?;
    Ok(Answer::new(
        &out,
        render::updated(&out, done, Some(terminal_width(config))),
    ))
}

/// `configure --set KEY=VALUE …` as the tool's arguments. A VALUE is JSON when it
/// parses (numbers, lists, objects), else a plain string; one that starts like JSON
/// (`[`, `{`, `"`) must be JSON.
fn configure_args(set: &[String]) -> Result<configure::Args, Error> {
    if set.is_empty() {
        return Ok(configure::Args { settings: None });
    }
    let mut settings = Map::new();
    for kv in set {
        let (key, value) = key_value(kv, "--set")?;
        let value = match value {
            // null would leave the setting as it is; the empty string clears the query.
            Value::Null if key == "default_query" => Value::String(String::new()),
            Value::Null => {
                return Err(Error::invalid(
                    format!("--set {key}"),
                    "null leaves a setting as it is: give the value it should have",
                ));
            }
            v => v,
        };
        settings.insert(key, value);
    }
    tools::parse_args(json!({ "settings": settings }))
}

/// Splits `KEY=VALUE` and reads VALUE as `configure_args` says.
fn key_value(kv: &str, flag: &str) -> Result<(String, Value), Error> {
    let Some((k, v)) = kv.split_once('=') else {
        return Err(Error::invalid(flag, format!("`{kv}` is not KEY=VALUE")));
    };
    let key = k.trim().to_owned();
    let looks_like_json = v.trim_start().starts_with(['[', '{', '"']);
    let value = match serde_json::from_str(v) {
        Ok(value) => value,
        Err(e) if looks_like_json => {
            return Err(Error::invalid(
                format!("{flag} {key}"),
                format!(
                    "`{v}` is not valid JSON at column {}: {}",
                    e.column(),
                    // serde_json ends its message with the position, said already.
                    e.to_string().split(" at line ").next().unwrap_or_default()
                ),
            ));
        }
        Err(_) => Value::String(v.to_owned()),
    };
    Ok((key, value))
}

/// Applies `--add KEY=VALUE` and `--remove KEY=NAME` to the list settings in `patch`,
/// starting from the `current` lists (or the patch's own, when `--set` gave one).
/// Clients are removed by name, other items by value (case-insensitively).
fn list_changes(
    current: &Value,
    patch: &mut Value,
    add: &[String],
    remove: &[String],
) -> Result<(), Error> {
    let Some(patch) = patch.as_object_mut() else {
        return Ok(());
    };
    let name_of = |item: &Value| -> Option<String> {
        match item {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("name").and_then(Value::as_str).map(str::to_owned),
            _ => None,
        }
    };
    for (kv, adding) in add
        .iter()
        .map(|kv| (kv, true))
        .chain(remove.iter().map(|kv| (kv, false)))
    {
        let flag = if adding { "--add" } else { "--remove" };
        let (key, value) = key_value(kv, flag)?;
        let list = match patch
            .get(&key)
            .filter(|v| !v.is_null())
            .or_else(|| current.get(&key))
        {
            Some(Value::Array(items)) => items.clone(),
            // An unknown key: the patch names it and the tool's check says which.
            None => Vec::new(),
            Some(_) => {
                return Err(Error::invalid(
                    format!("{flag} {key}"),
                    format!("`{key}` is not a list; use --set {key}=VALUE"),
                ));
            }
        };
        let mut list = list;
        let name = name_of(&value).unwrap_or_default();
        let position = list
            .iter()
            .position(|i| name_of(i).is_some_and(|n| n.eq_ignore_ascii_case(&name)));
        match (adding, position) {
            (true, Some(_)) => {
                return Err(Error::invalid(
                    format!("{flag} {key}"),
                    format!("{key} already has `{name}`; --remove it first to replace it"),
                ));
            }
            (true, None) => list.push(value),
            (false, Some(i)) => {
                list.remove(i);
            }
            (false, None) => {
                let present: Vec<String> = list.iter().filter_map(name_of).collect();
                return Err(Error::invalid(
                    format!("{flag} {key}"),
                    format!(
                        "{key} has no `{name}`; it has: {}",
                        if present.is_empty() {
                            "nothing".to_owned()
                        } else {
                            present.join(", ")
                        }
                    ),
                ));
            }
        }
        patch.insert(key, Value::Array(list));
    }
    Ok(())
}

/// `tool --help`'s list of tools, from the tool table.
fn tools_help() -> String {
    let mut text = String::from("Tools:\n");
    for tool in tools::TOOLS {
        text.push_str(&format!(
            "  {:<28} {}\n",
            tool.name,
            first_sentence(tool.description)
        ));
    }
    text
}

fn first_sentence(text: &str) -> &str {
    text.split_once(". ").map_or(text, |(first, _)| first)
}

/// `configure --help`'s list of keys, from the settings patch's schema.
fn settings_keys_help() -> String {
    let schema = serde_json::to_value(schemars::schema_for!(crate::domain::SettingsPatch))
        .unwrap_or(Value::Null);
    let mut text = String::from("Keys:\n");
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (key, prop) in props {
            let about = prop
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("");
            text.push_str(&format!("  {key:<28} {about}\n"));
        }
    }
    text
}

/// `billable auth gmail`: the installed-app flow, tokens stored 0600.
async fn auth(config: &Config, provider: &AuthProvider) -> Result<Answer, Error> {
    let AuthProvider::Gmail {
        client_secret,
        token_file,
    } = provider;
    let client_secret = client_secret
        .as_ref()
        .or(config.gmail_client_secret_file.as_ref())
        .ok_or_else(|| {
            Error::invalid(
                "--client-secret",
                "give the OAuth client secret (Desktop app) downloaded from Google Cloud, \
                 or set GMAIL_CLIENT_SECRET_FILE",
            )
        })?;
    let token_file = match token_file.as_ref().or(config.gmail_token_file.as_ref()) {
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
    Ok(Answer::silent())
}

/// The CLI's user. With Supabase it acts as the user whose JWT it was given
/// (`SUPABASE_ACCESS_TOKEN`), and row-level security does the rest.
fn local_user(config: &Config) -> UserId {
    match &config.supabase_access_token {
        Some(token) => UserId::local().with_token(token.expose()),
        None => UserId::local(),
    }
}

/// `billable migrate`: applies sql/ to DATABASE_URL and prints what it did.
async fn migrate(config: &Config, no_compat: bool) -> Result<Answer, Error> {
    let url = config.database_url.as_ref().ok_or_else(|| {
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
    let report = crate::migrate::migrate(url.expose(), compat).await?;
    Ok(Answer::new(&report, render::migrate(&report)))
}

/// `billable schedule run-now`: queues the due scheduled scans of every user, from
/// Postgres (Supabase mode) or the embedded file.
async fn run_schedules(
    config: &Config,
    at: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Answer, Error> {
    use crate::jobs::Queue;
    let queue: Box<dyn Queue> = if config.supabase_rest_url().is_some() {
        let url = config.database_url.as_ref().ok_or_else(|| {
            Error::invalid(
                "DATABASE_URL",
                "scheduled scans are queued in Postgres: set DATABASE_URL to the database as \
                 the billable_worker role (README.md, \"Background scans\")",
            )
        })?;
        Box::new(crate::jobs::postgres::PgQueue::new(url.expose()))
    } else {
        Box::new(crate::store::sqlite::SqliteStore::open(&config.db_path()?)?)
    };
    let queued = queue
        .enqueue_due(at.unwrap_or_else(chrono::Utc::now))
        .await?;
    Ok(Answer::new(&queued, render::scheduled(&queued)))
}

/// Refuses an `--mbox` that cannot be one before anything is scanned: a folder, or a
/// file whose first line is not an mbox `From ` line (an empty file is an empty mbox).
fn check_mbox(path: &std::path::Path) -> Result<(), Error> {
    use std::io::{BufRead, Read};
    let shown = path.display();
    if path.is_dir() {
        return Err(Error::invalid(
            "--mbox",
            format!(
                "{shown} is a folder, not an mbox file: use --maildir {shown} for a Maildir or \
                 --eml-dir {shown} for a folder of .eml files"
            ),
        ));
    }
    // A file that cannot be opened is reported by the source, with its reason.
    let Ok(file) = std::fs::File::open(path) else {
        return Ok(());
    };
    let mut first = Vec::new();
    let mut reader = std::io::BufReader::new(file.take(4096));
    if reader.read_until(b'\n', &mut first).is_err() {
        return Ok(());
    }
    let first = String::from_utf8_lossy(&first);
    let first = first.trim_end();
    if first.is_empty() || first.starts_with("From ") {
        return Ok(());
    }
    let mut shown_line: String = first.chars().take(60).collect();
    if shown_line.len() < first.len() {
        shown_line.push('…');
    }
    Err(Error::invalid(
        "--mbox",
        format!(
            "{shown} is not an mbox file: its first line is `{shown_line}`, where an mbox \
             starts with `From `. For a single message use `billable analyze FILE`; for a \
             folder of .eml files use --eml-dir"
        ),
    ))
}

/// A settings file (`--settings`) as `configure` takes it.
fn settings_file(path: &PathBuf) -> Result<configure::Args, Error> {
    let text = read_text(path, "settings")?;
    let patch: Value = serde_json::from_str(&text).map_err(|e| {
        Error::invalid(
            "--settings",
            format!(
                "{} is not valid JSON at line {} column {}: {e}",
                path.display(),
                e.line(),
                e.column()
            ),
        )
    })?;
    tools::parse_args(json!({ "settings": patch }))
}

fn read_text(path: &PathBuf, what: &str) -> Result<String, Error> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    text.map_err(|e| Error::invalid(what, format!("could not read {}: {e}", path.display())))
}

/// `serve` and `mcp`: long-running servers over the same context and tools.
async fn serve(cli: Cli) -> ExitCode {
    let result: anyhow::Result<()> = async {
        let config = config(&cli, true)?;
        let mut server = config.server.clone();
        let ctx = std::sync::Arc::new(context(&cli, &config).await?);
        match cli.command {
            Command::Serve { bind, .. } => {
                if let Some(bind) = bind {
                    server.bind = bind;
                }
                crate::http::serve(ctx, &server).await
            }
            Command::Worker {
                lease_secs, jobs, ..
            } => worker(ctx, &config, lease_secs, jobs).await,
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

/// `billable worker`: background scans until SIGTERM or Ctrl-C. On Supabase the
/// jobs come from Postgres (pgmq) and each is scanned with a token minted for its
/// user; with the embedded store, from the SQLite file.
async fn worker(
    ctx: std::sync::Arc<crate::Context>,
    config: &Config,
    lease_secs: Option<u64>,
    jobs: Option<u32>,
) -> anyhow::Result<()> {
    use crate::jobs::{Queue, postgres::PgQueue, token::UserTokens, worker};
    let (queue, tokens): (std::sync::Arc<dyn Queue>, _) = match ctx.local_queue() {
        Some(queue) => (queue, None),
        None => {
            let url = config.database_url.as_ref().ok_or_else(|| {
                Error::invalid(
                    "DATABASE_URL",
                    "a worker on Supabase takes jobs from Postgres: set DATABASE_URL to the database \
                     as the billable_worker role (README.md, \"Background scans\")",
                )
            })?;
            let secret = config.server.supabase_jwt_secret.as_ref().ok_or_else(|| {
                Error::invalid(
                    "SUPABASE_JWT_SECRET",
                    "a worker scans as each job's user with a token it signs: set \
                     SUPABASE_JWT_SECRET to the project's JWT secret",
                )
            })?;
            let tokens = std::sync::Arc::new(UserTokens::new(secret.expose()));
            (
                std::sync::Arc::new(PgQueue::new(url.expose())),
                Some(tokens),
            )
        }
    };
    let mut options = worker::WorkerOptions::new(worker::default_id());
    if let Some(secs) = lease_secs {
        options = options.with_lease(std::time::Duration::from_secs(secs));
    }
    if let Some(jobs) = jobs {
        options.jobs = jobs as usize;
    }
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            crate::http::stop_signal().await;
            eprintln!(
                "billable: worker stopping; a scan under way is saved and resumed by another worker"
            );
            shutdown.cancel();
        }
    });
    eprintln!("billable: worker {} waiting for scan jobs", options.id);
    worker::run(ctx, queue, tokens, options, shutdown).await;
    Ok(())
}

/// What watches a CLI scan: the progress display (on a terminal), Ctrl-C and SIGTERM.
/// The first of either asks the scan to stop at once, saving what it did (requests
/// to a model in flight are dropped); a second one exits at once.
struct ScanWatch {
    bar: Option<Bar>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl ScanWatch {
    fn start(total: Option<u64>) -> Self {
        use futures::FutureExt;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        // Polled once here, so Ctrl-C is handled from now on: left to the task below,
        // the handler would be installed only when a worker first polls it, which a
        // busy machine can delay past the key press (the scan then dies of SIGINT,
        // saving nothing and printing nothing). The SIGTERM handler is installed here.
        let mut first = Box::pin(tokio::signal::ctrl_c());
        let _ = first.as_mut().now_or_never();
        #[cfg(unix)]
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::spawn(async move {
            let mut interrupt = first;
            loop {
                #[cfg(unix)]
                let terminated = async {
                    match term.as_mut() {
                        Some(t) => t.recv().await,
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let terminated = std::future::pending::<Option<()>>();
                tokio::select! {
                    pressed = &mut interrupt => {
                        if pressed.is_err() {
                            return;
                        }
                        interrupt = Box::pin(tokio::signal::ctrl_c());
                    }
                    _ = terminated => {}
                }
                if flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    std::process::exit(130);
                }
                eprintln!("Stopping: saving what was done (Ctrl-C again to quit at once)…");
            }
        });
        ScanWatch {
            bar: std::io::stderr().is_terminal().then(|| Bar::new(total)),
            stop,
        }
    }
}

impl Progress for ScanWatch {
    fn report(&self, p: &ScanProgress) {
        if let Some(bar) = &self.bar {
            bar.report(p);
        }
    }

    fn cancelled(&self) -> bool {
        self.stop.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The width tables fit: `COLUMNS` when set, else the terminal's, else 100.
fn terminal_width(config: &Config) -> usize {
    const FALLBACK: usize = 100;
    config.columns.unwrap_or_else(|| {
        console::Term::stdout()
            .size_checked()
            .map_or(FALLBACK, |(_, cols)| usize::from(cols))
    })
}

/// How many messages a local source holds (an mbox's messages, Maildir `cur/` and
/// `new/`, or the .eml folder's files), so progress can show a bar; None when unknown
/// (Gmail lists as it goes).
fn messages_in_source(cli: &Cli) -> Option<u64> {
    let files = |dir: &std::path::Path| -> Option<u64> {
        let entries = std::fs::read_dir(dir).ok()?;
        Some(
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().is_file())
                .count() as u64,
        )
    };
    if let Some(mbox) = &cli.mail.mbox {
        return crate::mail::mbox::count_messages(mbox);
    }
    match (&cli.mail.maildir, &cli.mail.eml_dir) {
        (Some(dir), _) => {
            Some(files(&dir.join("cur")).unwrap_or(0) + files(&dir.join("new")).unwrap_or(0))
        }
        (_, Some(dir)) => files(dir),
        _ => None,
    }
}

/// Progress on stderr, only shown on a terminal: a bar with percentage, rate and ETA
/// when the number of messages is known, else a spinner with counts.
struct Bar(indicatif::ProgressBar);

impl Bar {
    fn new(total: Option<u64>) -> Self {
        let (bar, template) = match total {
            Some(n) => (
                indicatif::ProgressBar::new(n),
                "{bar:30} {percent:>3}% {pos}/{len} · {rate} · ETA {eta} · {msg}",
            ),
            None => (
                indicatif::ProgressBar::new_spinner(),
                "{spinner} {elapsed} {msg}",
            ),
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(template)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner())
                .with_key(
                    "rate",
                    |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.0} messages/s", state.per_sec());
                    },
                ),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Bar(bar)
    }
}

impl Progress for Bar {
    fn report(&self, p: &ScanProgress) {
        self.0.set_position(p.examined);
        self.0.set_message(format!(
            "{} examined, {} skipped, {} analyzed, {}, {}",
            p.examined,
            p.skipped,
            p.analyzed,
            render::count(p.entries, "new entry", "new entries"),
            render::count(p.errors, "error", "errors"),
        ));
    }
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
    fn a_local_source_knows_how_many_messages_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        for (sub, name) in [("cur", "a"), ("cur", "b"), ("new", "c")] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
            std::fs::write(dir.path().join(sub).join(name), "x").unwrap();
        }
        let folder = dir.path().to_str().unwrap();
        let maildir = Cli::parse_from(["billable", "--maildir", folder, "scan"]);
        assert_eq!(messages_in_source(&maildir), Some(3));
        let eml = Cli::parse_from(["billable", "--eml-dir", &format!("{folder}/cur"), "scan"]);
        assert_eq!(messages_in_source(&eml), Some(2));
        let missing = Cli::parse_from(["billable", "--mbox", "x.mbox", "scan"]);
        assert_eq!(messages_in_source(&missing), None);
        let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/demo.mbox");
        let mbox = Cli::parse_from(["billable", "--mbox", demo, "scan"]);
        // The demo holds 16 messages and one repeated (a Takeout copy in two labels).
        assert_eq!(messages_in_source(&mbox), Some(17));
    }

    #[test]
    fn configure_set_values_are_json_or_strings() {
        let args = configure_args(&[
            "timezone=Europe/Paris".into(),
            "billing_increment_minutes=15".into(),
            "my_addresses=[\"a@b.com\"]".into(),
        ])
        .unwrap();
        let patch = args.settings.expect("a patch");
        assert_eq!(patch.timezone.as_deref(), Some("Europe/Paris"));
        assert_eq!(patch.billing_increment_minutes, Some(15));
        assert_eq!(patch.my_addresses, Some(vec!["a@b.com".to_owned()]));
        let e = configure_args(&["timezon=UTC".into()]).unwrap_err();
        assert!(e.to_string().contains("timezon"), "{e}");
    }
}
