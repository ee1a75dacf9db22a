//! `billable eval`: scans labelled mail into a throwaway store and scores the entries
//! against the labels (docs/eval.md). The scoring is `crate::eval`; here are the runs:
//! settings stored as `configure` would, the scan, the pages of `list_time_entries`,
//! and with `--learn-first-fraction` a person's review through `update_time_entries`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;

use super::{Answer, Cli, MailArgs, config, read_text};
use crate::config::{Config, SourceConfig};
use crate::context::Context;
use crate::domain::{EntryStatus, TimeEntry, UserId};
use crate::error::Error;
use crate::eval::score::{Group, figure};
use crate::eval::subset::{Dated, OnlyIds, split_oldest};
use crate::eval::{Labels, Report, Seen, Want, score};
use crate::mail::{MailQuery, MailSource, query::HeaderInfo};
use crate::store::ScanStatus;
use crate::tools::{self, NoProgress, configure, list, scan, update};

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// The labels: a JSON file in billable's labels format (docs/eval.md). It may name
    /// a settings file relative to itself, used unless --settings is given
    #[arg(long, value_name = "FILE")]
    pub labels: PathBuf,
    /// Simulate a person who reviews: scan the oldest F of the messages (by Date, by
    /// count; 0 < F < 1), approve each entry labelled billable and reject each
    /// labelled not billable, then scan the rest and score only the rest
    #[arg(long, value_name = "F")]
    pub learn_first_fraction: Option<f64>,
    #[command(flatten)]
    pub mail: MailArgs,
}

/// What `billable eval` answers; the figures (`P`, `R`, `spec`, `Psugg`, `client`,
/// `dur`, `n`, …) at the top level.
#[derive(Debug, Serialize)]
pub struct EvalOutput {
    /// The summary line, as the text output ends.
    pub line: String,
    pub labels_file: String,
    pub settings_file: Option<String>,
    pub source: String,
    pub analyzer: String,
    /// The scan whose entries were scored (with learning: the scan of the rest).
    pub scan: ScanCounts,
    /// With `--learn-first-fraction`: what the simulated person did.
    pub learning: Option<Learning>,
    /// Labelled message ids the mail does not hold (a mistyped id, or another
    /// mailbox's): scored as messages without an entry.
    pub labels_not_in_mail: Vec<String>,
    #[serde(flatten)]
    pub report: Report,
}

#[derive(Debug, Serialize)]
pub struct ScanCounts {
    pub status: ScanStatus,
    pub examined: u64,
    pub skipped_automated: u64,
    pub analyzed: u64,
    pub entries_created: u64,
    pub errors_total: u64,
}

impl From<&scan::Output> for ScanCounts {
    fn from(o: &scan::Output) -> Self {
        ScanCounts {
            status: o.status,
            examined: o.examined,
            skipped_automated: o.skipped_automated,
            analyzed: o.analyzed,
            entries_created: o.entries_created,
            errors_total: o.errors_total,
        }
    }
}

/// The review of the oldest part.
#[derive(Debug, Default, Serialize)]
pub struct Learning {
    pub fraction: f64,
    /// Distinct messages in the mailbox.
    pub messages: usize,
    /// The oldest ones, scanned and reviewed.
    pub reviewed_messages: usize,
    /// The rest: scanned after the review, and the only ones scored.
    pub scored_messages: usize,
    /// Entries the scan of the oldest part made.
    pub entries: usize,
    pub approved: usize,
    pub rejected: usize,
    /// Entries on messages labelled either, or not labelled: a person would have
    /// judged them, but the labels do not say how.
    pub left: usize,
    /// The oldest part's entries as the store holds them after the review.
    pub reviewed: Vec<Reviewed>,
}

/// One entry of the reviewed part, after the review.
#[derive(Debug, Serialize)]
pub struct Reviewed {
    pub message_id: String,
    /// `true`, `false`, `either`, or `unlabelled`.
    pub label: &'static str,
    pub status: EntryStatus,
}

/// Runs `billable eval`.
pub(super) async fn run(cli: &Cli, args: &EvalArgs) -> Result<Answer, Error> {
    refuse_flags(cli)?;
    let fraction = args
        .learn_first_fraction
        .map(|f| {
            if f > 0.0 && f < 1.0 {
                Ok(f)
            } else {
                Err(Error::invalid(
                    "--learn-first-fraction",
                    format!("{f} is not between 0 and 1: give e.g. 0.3 to review the oldest 30%"),
                ))
            }
        })
        .transpose()?;
    let labels = read_labels(&args.labels)?;
    let settings_file = cli.settings.clone().or_else(|| {
        let named = labels.settings.as_ref()?;
        Some(args.labels.parent().unwrap_or(Path::new(".")).join(named))
    });
    let settings = match &settings_file {
        Some(path) => Some(super::settings_file(path)?),
        None => {
            eprintln!(
                "note: no settings (neither --settings nor a \"settings\" file in the labels): \
                 mail is judged with no clients configured"
            );
            None
        }
    };

    let dir = ScratchDir::new()?;
    let config = throwaway_config(cli, &dir.0)?;
    let user = UserId::local();
    let base = Context::from_config(&config)?;
    if let Some(args) = settings {
        tools::run::<configure::ConfigureTimeTracking>(&base, &user, args, &NoProgress).await?;
    }
    let source = base.source(&user).await?;
    let analyzer = base.analyzer.name();
    let messages = dated(source.as_ref()).await?;
    let missing = missing_labels(&labels, &messages);
    if let Some(first) = missing.first() {
        eprintln!(
            "note: {} labels name messages the mail does not hold (e.g. {first}); they count \
             as messages without an entry. A local export's ids are Message-IDs without angle \
             brackets",
            missing.len()
        );
    }

    let (learning, scope, ctx) = match fraction {
        None => (None, None, base),
        Some(f) => {
            let (learning, rest) =
                learn(&config, &user, source.clone(), messages, &labels, f).await?;
            let ctx = Context::from_config(&config)?.with_source(Arc::new(OnlyIds::new(
                source.clone(),
                rest.clone(),
                "the messages after the reviewed ones",
            )));
            (Some(learning), Some(rest), ctx)
        }
    };
    let scanned = scan_all(&ctx, &user).await?;
    let entries: Vec<Seen> = list_all(&ctx, &user)
        .await?
        .iter()
        .map(Seen::from)
        .collect();
    let report = score(&labels, &entries, scope.as_ref());
    let out = EvalOutput {
        line: report.line(),
        labels_file: args.labels.display().to_string(),
        settings_file: settings_file.map(|p| p.display().to_string()),
        source: source.describe(),
        analyzer,
        scan: ScanCounts::from(&scanned),
        learning,
        labels_not_in_mail: missing,
        report,
    };
    let mut answer = Answer::new(&out, render(&out));
    if scanned.status == ScanStatus::Interrupted {
        answer.code = ExitCode::from(3);
    }
    Ok(answer)
}

/// Flags that would point eval at the user's own data, which it never touches.
fn refuse_flags(cli: &Cli) -> Result<(), Error> {
    if cli.db.is_some() {
        return Err(Error::invalid(
            "--db",
            "eval scans into a throwaway database of its own and never reads or writes yours: \
             leave out --db",
        ));
    }
    if cli.save {
        return Err(Error::invalid(
            "--save",
            "eval stores nothing of yours: leave out --save",
        ));
    }
    if cli.mail.gmail {
        return Err(Error::invalid(
            "--gmail",
            "eval reads a local export of the labelled mail: give --mbox FILE, --maildir DIR \
             or --eml-dir DIR",
        ));
    }
    Ok(())
}

fn read_labels(path: &Path) -> Result<Labels, Error> {
    let text = read_text(&path.to_path_buf(), "--labels")?;
    let labels = Labels::parse(&text).map_err(|e| {
        Error::invalid(
            e.field,
            format!(
                "in {}: {}; the format is in docs/eval.md",
                path.display(),
                e.message
            ),
        )
    })?;
    if labels.labels.is_empty() {
        return Err(Error::invalid(
            "labels",
            format!(
                "{} has no labels: add one object per labelled message",
                path.display()
            ),
        ));
    }
    Ok(labels)
}

/// The configuration of the run: the mail and analyzer as given, and an SQLite file in
/// `dir` whatever the environment says about stores.
fn throwaway_config(cli: &Cli, dir: &Path) -> Result<Config, Error> {
    let mut config = config(cli, false)?;
    if config.source == SourceConfig::None {
        return Err(Error::invalid(
            "--mbox",
            "give the labelled mail: --mbox FILE, --maildir DIR or --eml-dir DIR",
        ));
    }
    config.db = Some(dir.join("eval.sqlite3"));
    config.supabase_url = None;
    config.supabase_rest_url = None;
    config.supabase_access_token = None;
    config.database_url = None;
    config.gmail = None;
    Ok(config)
}

/// A folder of the run's own, removed when the run ends, however it ends.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> Result<Self, Error> {
        let path = std::env::temp_dir().join(format!("billable-eval-{}", uuid::Uuid::new_v4()));
        crate::private::dir(&path).map_err(|e| {
            Error::invalid(
                "TMPDIR",
                format!(
                    "could not create {}: {e}; point TMPDIR at a writable folder",
                    path.display()
                ),
            )
        })?;
        Ok(ScratchDir(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Scans the oldest `fraction` of the mailbox and reviews its entries as the labels
/// say; answers what was done and the ids of the rest.
async fn learn(
    config: &Config,
    user: &UserId,
    source: Arc<dyn MailSource>,
    messages: Vec<Dated>,
    labels: &Labels,
    fraction: f64,
) -> Result<(Learning, HashSet<String>), Error> {
    let total = messages.len();
    let split = split_oldest(messages, fraction);
    let what = format!("the oldest {:.0}%", fraction * 100.0);
    let ctx = Context::from_config(config)?.with_source(Arc::new(OnlyIds::new(
        source,
        split.first.clone(),
        &what,
    )));
    scan_all(&ctx, user).await?;
    let entries = list_all(&ctx, user).await?;
    let mut learning = Learning {
        fraction,
        messages: total,
        reviewed_messages: split.first.len(),
        scored_messages: split.rest.len(),
        entries: entries.len(),
        ..Learning::default()
    };
    let wants: std::collections::HashMap<&str, Want> = labels
        .labels
        .iter()
        .map(|l| (l.message_id.as_str(), l.want))
        .collect();
    let want = |e: &TimeEntry| {
        let id = crate::eval::labels::normalize_id(&e.message_id);
        wants.get(id.as_str()).copied()
    };
    let (mut approve, mut approve_billable, mut reject) = (Vec::new(), Vec::new(), Vec::new());
    for e in &entries {
        match want(e) {
            // Work to bill that the entry calls not billable: the person fixes that too.
            Some(Want::Billable) if !e.billable => approve_billable.push(e.id.clone()),
            Some(Want::Billable) => approve.push(e.id.clone()),
            Some(Want::NotBillable) => reject.push(e.id.clone()),
            Some(Want::Either) | None => learning.left += 1,
        }
    }
    learning.approved = approve.len() + approve_billable.len();
    learning.rejected = reject.len();
    review(&ctx, user, approve, EntryStatus::Approved, None).await?;
    review(
        &ctx,
        user,
        approve_billable,
        EntryStatus::Approved,
        Some(true),
    )
    .await?;
    review(&ctx, user, reject, EntryStatus::Rejected, None).await?;
    learning.reviewed = list_all(&ctx, user)
        .await?
        .iter()
        .map(|e| Reviewed {
            message_id: crate::eval::labels::normalize_id(&e.message_id),
            label: want(e).map_or("unlabelled", Want::as_str),
            status: e.status,
        })
        .collect();
    Ok((learning, split.rest))
}

/// The labels whose message is not in `messages`, in the labels' order.
fn missing_labels(labels: &Labels, messages: &[Dated]) -> Vec<String> {
    let held: HashSet<&str> = messages.iter().map(|m| m.id.as_str()).collect();
    labels
        .labels
        .iter()
        .filter(|l| !held.contains(l.message_id.as_str()))
        .map(|l| l.message_id.clone())
        .collect()
}

/// Every message of the source with its Date, read from the headers.
async fn dated(source: &dyn MailSource) -> Result<Vec<Dated>, Error> {
    let query = MailQuery::default();
    let mut stream = source.list(&query);
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        // A message that cannot be listed has no id; its scan reports it.
        let Ok(listed) = item else { continue };
        let date = match &listed.raw {
            Some(raw) => HeaderInfo::from_bytes(&raw.bytes, &[], false).date,
            None => None,
        };
        out.push(Dated {
            id: listed.id,
            date,
        });
    }
    Ok(out)
}

/// One person's review through the tool, as `billable approve`/`reject` would do it.
async fn review(
    ctx: &Context,
    user: &UserId,
    ids: Vec<String>,
    status: EntryStatus,
    billable: Option<bool>,
) -> Result<(), Error> {
    // The tool takes at most 10000 ids per call.
    for chunk in ids.chunks(10_000) {
        let args = update::Args {
            ids: chunk.to_vec(),
            changes: update::Changes {
                status: Some(status),
                billable,
                ..Default::default()
            },
        };
        tools::run::<update::UpdateTimeEntries>(ctx, user, args, &NoProgress).await?;
    }
    Ok(())
}

/// A foreground scan of everything the context's source lists.
async fn scan_all(ctx: &Context, user: &UserId) -> Result<scan::Output, Error> {
    let args = scan::Args {
        background: Some(false),
        ..Default::default()
    };
    let reply = tools::run::<scan::ScanBillableTime>(ctx, user, args, &NoProgress).await?;
    reply
        .done
        .map(|done| *done)
        .ok_or_else(|| Error::invalid("background", "eval scans in the foreground"))
}

/// Every entry, through `list_time_entries` pages as any client reads them.
async fn list_all(ctx: &Context, user: &UserId) -> Result<Vec<TimeEntry>, Error> {
    const PAGE: u32 = 500;
    let mut entries = Vec::new();
    loop {
        let args = list::Args {
            limit: Some(PAGE),
            offset: Some(u32::try_from(entries.len()).unwrap_or(u32::MAX)),
            ..Default::default()
        };
        let page = tools::run::<list::ListTimeEntries>(ctx, user, args, &NoProgress).await?;
        let got = page.entries.len();
        entries.extend(page.entries);
        if got == 0 || entries.len() as u64 >= page.total {
            return Ok(entries);
        }
    }
}

/// The text output: what ran, the counts, the errors by class, and last the line.
fn render(out: &EvalOutput) -> String {
    use std::fmt::Write;
    let r = &out.report;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "labels: {}; mail: {}; analyzer: {}; settings: {}",
        out.labels_file,
        out.source,
        out.analyzer,
        out.settings_file.as_deref().unwrap_or("none")
    );
    if let Some(l) = &out.learning {
        let _ = writeln!(
            s,
            "learning: the oldest {:.0}% by Date ({} of {} messages) scanned and reviewed: {} \
             entries, {} approved, {} rejected, {} left (either or unlabelled); scored: only the \
             other {} messages",
            l.fraction * 100.0,
            l.reviewed_messages,
            l.messages,
            l.entries,
            l.approved,
            l.rejected,
            l.left,
            l.scored_messages
        );
    }
    let c = &out.scan;
    let _ = writeln!(
        s,
        "scan: status={} examined={} skipped_automated={} analyzed={} entries_created={} errors={}",
        c.status.as_str(),
        c.examined,
        c.skipped_automated,
        c.analyzed,
        c.entries_created,
        c.errors_total
    );
    let e = &r.entries;
    let _ = writeln!(
        s,
        "labels: {} ({} scored, {} either); entries: {} (billable=false: {}), on labelled \
         messages {}, on unlabelled messages (not scored) {}",
        r.labels, r.n, r.either, e.listed, e.not_billable, e.on_labelled, e.on_unlabelled
    );
    let _ = writeln!(
        s,
        "scored: TP={} FP={} FN={} TN={}; suggested: TP={} FP={}; needs_review: TP={} FP={} \
         (Prev={})",
        r.tp,
        r.fp,
        r.fn_,
        r.tn,
        r.suggested.tp,
        r.suggested.fp,
        r.needs_review.tp,
        r.needs_review.fp,
        figure(r.prev)
    );
    let _ = writeln!(
        s,
        "{:<38} {:<6} {:>5} {:>6} {:>5} {:>7}",
        "class", "label", "n", "entry", "sugg", "review"
    );
    for row in &r.classes {
        let _ = writeln!(
            s,
            "  {:<36} {:<6} {:>5} {:>6} {:>5} {:>7}",
            row.class, row.label, row.n, row.with_entry, row.suggested, row.needs_review
        );
    }
    let groups: [(&str, &[Group]); 6] = [
        (
            "false positives (entry, label says not billable)",
            &r.errors.false_positives,
        ),
        ("missed (label billable, no entry)", &r.errors.misses),
        ("wrong client", &r.errors.wrong_client),
        (
            "billed minutes above the label range",
            &r.errors.billed_over,
        ),
        (
            "billed minutes below the label range",
            &r.errors.billed_under,
        ),
        ("activity differs", &r.errors.activity),
    ];
    for (title, groups) in groups {
        let total: usize = groups.iter().map(|g| g.n).sum();
        let _ = writeln!(s, "{title}: {total}");
        for g in groups {
            let _ = writeln!(
                s,
                "  {:<36} {:>3}  e.g. {}",
                g.key,
                g.n,
                g.examples.join(", ")
            );
        }
    }
    let _ = writeln!(
        s,
        "weighted estimate for the mailbox: P={} R={}",
        figure(r.weighted.p),
        figure(r.weighted.r)
    );
    let _ = writeln!(
        s,
        "billed minutes on scored messages: tool {}, labels (mid-range) {:.0}",
        r.minutes.tool, r.minutes.labelled
    );
    let _ = writeln!(s, "{}", out.line);
    s
}
