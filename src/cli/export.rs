//! `billable export`: the export tool's file, written where the user asked and never
//! over an existing file unless `--force`.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::context::Context;
use crate::domain::{EntryStatus, UserId, WorkDate};
use crate::error::{Error, Result};
use crate::export::Format;
use crate::tools::{self, NoProgress, export};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// Our columns, one row per entry
    Csv,
    /// LEDES 1998B, the e-billing invoice (one client per file)
    Ledes1998b,
    /// Harvest's time import
    HarvestCsv,
    /// Toggl Track's CSV import
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
    #[arg(long, value_name = "TEXT")]
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

/// Runs the export and writes its file; returns the tool's answer and where it went.
pub async fn run(
    ctx: &Context,
    user: &UserId,
    args: ExportArgs,
) -> Result<(export::Output, Option<PathBuf>)> {
    // Opened before anything is marked exported: a file that is there (or cannot be
    // made) stops the export with nothing changed.
    let mut file = match &args.out {
        Some(path) => Some(open(path, args.force)?),
        None => None,
    };
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
    let out = match tools::run::<export::ExportTimeEntries>(ctx, user, tool_args, &NoProgress).await
    {
        Ok(out) => out,
        Err(e) => {
            // Leave no empty file behind a refused export.
            if let (Some(path), false) = (&args.out, args.force) {
                drop(file.take());
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
    };
    if let (Some(f), Some(path)) = (file.as_mut(), &args.out) {
        f.write_all(out.content.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| {
                Error::invalid(
                    "--out",
                    format!(
                        "the entries were exported (batch {}) but {} could not be written: {e}; \
                         run again with --include-exported --force to write it",
                        out.batch_id.as_deref().unwrap_or("none"),
                        path.display()
                    ),
                )
            })?;
    }
    Ok((out, args.out))
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
