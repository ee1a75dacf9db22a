//! `billable review`: the entries awaiting review, one at a time, oldest first (a day
//! reads in the order it happened). Every decision is saved at once through
//! `update_time_entries`, so quitting, or losing the terminal, loses nothing.

use std::io::IsTerminal;

use console::{Key, Term};

use super::{Answer, render};
use crate::context::Context;
use crate::domain::{EntryStatus, TimeEntry, UserId, WorkDate};
use crate::error::{Error, ErrorKind};
use crate::tools::{self, NoProgress, list, update};

const KEYS: &str = "[a]pprove  [r]eject  [m]inutes  [d]escription  [s]kip  [q]uit";

/// Which entries to review.
pub struct Filter {
    pub from: Option<WorkDate>,
    pub to: Option<WorkDate>,
    pub client: Option<String>,
}

pub async fn run(ctx: &Context, user: &UserId, filter: Filter) -> Result<Answer, Error> {
    // Keys are read raw from the terminal; a pipe would never answer them.
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return Err(Error::invalid(
            "review",
            "billable review needs a terminal; use approve/reject/edit in scripts",
        ));
    }
    let queue = awaiting(ctx, user, &filter).await?;
    let term = Term::stdout();
    let mut tally = render::Tally::default();
    if queue.is_empty() {
        let text = "Nothing to review.\n".to_owned();
        return Ok(Answer::new(&tally, text));
    }
    let total = queue.len();
    let mut reached = 0;
    'entries: for (i, mut entry) in queue.into_iter().enumerate() {
        reached = i + 1;
        let mut edited = false;
        say(&term, &render::review_card(&entry, i + 1, total))?;
        loop {
            say(&term, &format!("{KEYS} > "))?;
            let key = tokio::task::block_in_place(|| term.read_key()).map_err(terminal)?;
            let changes = match key {
                Key::Char('a') => status(EntryStatus::Approved),
                Key::Char('r') => status(EntryStatus::Rejected),
                Key::Char('s') => {
                    say(&term, "skipped\n")?;
                    tally.skipped += 1;
                    break;
                }
                Key::Char('q') | Key::Escape => {
                    say(&term, "quit\n")?;
                    reached = i;
                    break 'entries;
                }
                Key::Char('m') => {
                    let prompt = format!(
                        "\nMinutes to bill (now {}; Enter keeps them): ",
                        entry.billed_minutes
                    );
                    let Some(text) = ask(&term, &prompt)? else {
                        continue;
                    };
                    match text.parse::<u32>() {
                        Ok(m) => update::Changes {
                            billed_minutes: Some(m),
                            ..Default::default()
                        },
                        Err(_) => {
                            say(
                                &term,
                                &format!("  ! `{text}` is not a whole number of minutes\n"),
                            )?;
                            continue;
                        }
                    }
                }
                Key::Char('d') => {
                    let Some(text) = ask(&term, "\nNew description (Enter keeps it): ")? else {
                        continue;
                    };
                    update::Changes {
                        description: Some(text),
                        ..Default::default()
                    }
                }
                _ => {
                    say(&term, "\n")?;
                    continue;
                }
            };
            let decided = changes.status;
            match save(ctx, user, &entry.id, changes).await {
                Ok(now) => entry = now,
                // A value the tool refused: say why and ask again about this entry.
                Err(e) if matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::NotFound) => {
                    say(&term, &format!("\n  ! {e}\n"))?;
                    continue;
                }
                Err(e) => return Err(e),
            }
            match decided {
                Some(EntryStatus::Approved) => {
                    say(&term, "approved\n")?;
                    tally.approved += 1;
                    break;
                }
                Some(_) => {
                    say(&term, "rejected\n")?;
                    tally.rejected += 1;
                    break;
                }
                // An edit stays on the entry, so it can be approved as corrected.
                None => {
                    if !edited {
                        tally.edited += 1;
                        edited = true;
                    }
                    say(&term, &render::review_card(&entry, i + 1, total))?;
                }
            }
        }
    }
    tally.left = (total - reached) as u64;
    Ok(Answer::new(&tally, render::tally(&tally)))
}

fn status(s: EntryStatus) -> update::Changes {
    update::Changes {
        status: Some(s),
        ..Default::default()
    }
}

/// One entry changed through the tool; the entry as it is now.
async fn save(
    ctx: &Context,
    user: &UserId,
    id: &str,
    changes: update::Changes,
) -> Result<TimeEntry, Error> {
    let args = update::Args {
        ids: vec![id.to_owned()],
        changes,
    };
    let out = tools::run::<update::UpdateTimeEntries>(ctx, user, args, &NoProgress).await?;
    out.entries
        .into_iter()
        .next()
        .ok_or_else(|| Error::NotFound(format!("no time entry with id {id}")))
}

/// The entries awaiting review (suggested and needs_review), oldest first.
async fn awaiting(ctx: &Context, user: &UserId, f: &Filter) -> Result<Vec<TimeEntry>, Error> {
    const PAGE: u32 = 500;
    let mut all = Vec::new();
    for status in [EntryStatus::Suggested, EntryStatus::NeedsReview] {
        let mut offset = 0;
        loop {
            let args = list::Args {
                from: f.from,
                to: f.to,
                client: f.client.clone(),
                status: Some(status),
                limit: Some(PAGE),
                offset: Some(offset),
                ..Default::default()
            };
            let page = tools::run::<list::ListTimeEntries>(ctx, user, args, &NoProgress).await?;
            let n = page.entries.len() as u32;
            all.extend(page.entries);
            offset += n;
            if n == 0 || u64::from(offset) >= page.total {
                break;
            }
        }
    }
    all.sort_by(|a, b| (a.work_date, a.created_at, &a.id).cmp(&(b.work_date, b.created_at, &b.id)));
    Ok(all)
}

fn say(term: &Term, text: &str) -> Result<(), Error> {
    term.write_str(&crate::domain::text::for_terminal(text))
        .map_err(terminal)
}

/// A line typed after `prompt`, trimmed; None when it is empty.
fn ask(term: &Term, prompt: &str) -> Result<Option<String>, Error> {
    say(term, prompt)?;
    let line = tokio::task::block_in_place(|| term.read_line()).map_err(terminal)?;
    let line = line.trim().to_owned();
    Ok((!line.is_empty()).then_some(line))
}

fn terminal(e: std::io::Error) -> Error {
    Error::invalid("review", format!("the terminal could not be read: {e}"))
}
