//! `billable export`: the export tool's file, written where the user asked and never
//! over an existing file unless `--force`.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::context::Context;
use crate::domain::{EntryStatus, UserId, WorkDate};
use crate::error::{Error, Result};
use crate::export::Format;
use crate::tools::export;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// Our columns, one row per entry
    Csv,
    /// LEDES 1998B, the e-billing invoice (one client per file)
    Ledes1998b,
    /// Harvest's time import
    #[value(name = "harvest_csv", alias = "harvest-csv")]
    HarvestCsv,
    /// Toggl Track's CSV import
    #[value(name = "toggl_csv", alias = "toggl-csv")]
    TogglCsv,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Csv => Format::Csv,
            FormatArg::Ledes1998b => Format::Ledes1998b,
            FormatArg::HarvestCsv => Format::HarvestCsv,
            FormatArg::TogglCsv => Format::TogglCsv,
        }
    }
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The file format
    #[arg(long, value_enum)]
    pub format: FormatArg,
    /// First work date included (YYYY-MM-DD)
    #[arg(long, value_parser = super::date, value_name = "YYYY-MM-DD")]
    pub from: Option<WorkDate>,
    /// Last work date included (YYYY-MM-DD)
    #[arg(long, value_parser = super::date, value_name = "YYYY-MM-DD")]
    pub to: Option<WorkDate>,
    /// Only this client's entries (a LEDES invoice is for one client)
    #[arg(long, value_name = "NAME")]
    pub client: Option<String>,
    /// Only this matter's entries (its id as configured)
    #[arg(long, value_name = "ID")]
    pub matter: Option<String>,
    /// Which entries to export [default: approved]
    #[arg(long, value_enum)]
    pub status: Option<super::StatusArg>,
    /// Export entries an earlier export already sent, too (importing them again bills
    /// them twice)
    #[arg(long)]
    pub include_exported: bool,
    /// The invoice number (LEDES needs one)
    #[arg(long, value_name = "NUMBER")]
    pub invoice: Option<String>,
    /// The invoice date (YYYY-MM-DD) [default: today]
    #[arg(long, value_parser = super::date, value_name = "YYYY-MM-DD")]
    pub invoice_date: Option<WorkDate>,
    /// A description of the invoice as a whole
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    pub invoice_description: Option<String>,
    /// Write the file here; without it the file goes to standard output
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Overwrite FILE if it exists
    #[arg(long, requires = "out")]
    pub force: bool,
    /// Write the file but mark nothing exported
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs the export: renders it, writes exactly its bytes to `--out` or standard
/// output, and only then marks its entries exported, so a failed write marks nothing.
/// Prints what was done (on stderr when the file went to standard output).
pub async fn run(
    ctx: &Context,
    user: &UserId,
    args: ExportArgs,
    json_out: bool,
) -> Result<super::Answer> {
    let tool_args = export::Args {
        format: args.format.into(),
        from: args.from,
        to: args.to,
        client: args.client,
        matter: args.matter,
        status: args.status.map(EntryStatus::from),
        include_exported: args.include_exported.then_some(true),
        invoice: Some(export::InvoiceArgs {
            number: args.invoice,
            date: args.invoice_date,
            description: args.invoice_description,
        }),
        dry_run: args.dry_run.then_some(true),
    };
    // A file that is there is refused before anything else, whatever the export holds.
    if let (Some(path), false) = (&args.out, args.force)
        && path.exists()
    {
        return Err(Error::invalid(
            "--out",
            format!(
                "cannot write {}: it already exists; pass --force to overwrite it, or choose \
                 another --out",
                path.display()
            ),
        ));
    }
    let prepared = export::prepare(ctx, user, tool_args).await?;
    let planned = prepared.output();
    match &args.out {
        // An empty file would block the real export later (it exists) and look like an
        // invoice; nothing to export writes nothing.
        Some(_) if planned.entries == 0 => {}
        Some(path) => write_file(path, args.force, planned.content.as_bytes())?,
        None if json_out => {}
        None => write_stdout(planned.content.as_bytes())?,
    }
    let out = prepared
        .mark(ctx, user)
        .await
        .map_err(|e| unmarked(e, &args.out))?;
    let summary = super::render::exported(&out, args.out.as_deref());
    Ok(match (&args.out, json_out) {
        (Some(_), _) => super::Answer::new(&out, summary),
        // With --json the answer (the file in `content`) is what standard output gets.
        (None, true) => super::Answer::new(&out, String::new()),
        (None, false) => {
            eprint!("{summary}");
            super::Answer::silent()
        }
    })
}

/// Says, before the error itself is reported, that the file was written but its
/// entries are still unexported: the next export sends them again.
fn unmarked(e: Error, out: &Option<PathBuf>) -> Error {
    let place = out
        .as_ref()
        .map_or_else(|| "standard output".to_owned(), |p| p.display().to_string());
    eprintln!(
        "The file was written to {place} but its entries could not be marked exported; \
         they stay unexported, so do not import that file: export again."
    );
    e
}

/// The file's bytes as they are: a file is data, not text for a terminal.
fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| {
            Error::invalid(
                "--out",
                format!(
                    "could not write the file to standard output: {e}; nothing was marked \
                 exported, so run the export again"
                ),
            )
        })
}

/// Writes the whole file, refusing to replace one unless `force`; a failure removes
/// what a new file had and marks nothing.
fn write_file(path: &PathBuf, force: bool, bytes: &[u8]) -> Result<()> {
    let mut file = open(path, force)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    drop(file);
    written.map_err(|e| {
        // A half-written new file would pass for the invoice; one that was there
        // before (--force) is the person's to keep or remove.
        if !force {
            let _ = std::fs::remove_file(path);
        }
        Error::invalid(
            "--out",
            format!(
                "{} could not be written: {e}; nothing was marked exported",
                path.display()
            ),
        )
    })
}

fn open(path: &PathBuf, force: bool) -> Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    options.open(path).map_err(|e| {
        let why = if e.kind() == std::io::ErrorKind::AlreadyExists {
            "it already exists; pass --force to overwrite it, or choose another --out".to_owned()
        } else {
            e.to_string()
        };
        Error::invalid("--out", format!("cannot write {}: {why}", path.display()))
    })
}
