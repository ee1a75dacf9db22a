//! `billable review`: the entries awaiting review, one at a time, oldest first (a day
//! reads in the order it happened). Every decision is saved at once through
//! `update_time_entries`, so quitting, or losing the terminal, loses nothing.

use std::io::IsTerminal;

use console::{Key, Term};

use super::{Answer, render};
use crate::context::Context;
use crate::domain::{EntryStatus, TimeEntry, UserId, WorkDate};
use crate::error::{Error, ErrorKind};
use crate::tools::{self, NoProgress, analyze, list, update};

const KEYS: &str =
    "[a]pprove [r]eject [m]inutes [d]escription [s]kip [u]ndo [w]hy [o]pen [?]help [q]uit";

const HELP: &str = "
  a  approve the entry (saved at once) and go to the next
  r  reject it (never billed) and go to the next
  m  change the minutes to bill; d  change the description (the entry stays on screen)
  s  skip it for now; it stays awaiting review
  u  undo the last approve, reject or edit (back to that entry, as it was)
  w  why: the status, confidence and the analyzer's reasons
  o  open the message the entry came from
  ?  this help;  q or Esc  quit (everything decided so far is saved)
";

/// Which entries to review.
pub struct Filter {
    pub from: Option<WorkDate>,
    pub to: Option<WorkDate>,
    pub client: Option<String>,
}

/// The last saved action, to undo: the entry's place in the queue and the entry
/// as it was before.
struct Last {
    index: usize,
    before: TimeEntry,
    counted: Counted,
}

/// Which tally the action added to, so an undo takes it back.
#[derive(Clone, Copy)]
enum Counted {
    Approved,
    Rejected,
    Edited,
    Nothing,
}

pub async fn run(ctx: &Context, user: &UserId, filter: Filter) -> Result<Answer, Error> {
    // Keys are read raw from the terminal; a pipe would never answer them.
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return Err(Error::invalid(
            "review",
            "billable review needs a terminal; use approve/reject/edit in scripts",
        ));
    }
    let mut queue = awaiting(ctx, user, &filter).await?;
    let term = Term::stdout();
    let mut tally = render::Tally::default();
    if queue.is_empty() {
        let text = "Nothing to review.\n".to_owned();
        return Ok(Answer::new(&tally, text));
    }
    let total = queue.len();
    let mut i = 0;
    let mut last: Option<Last> = None;
    // Entries whose minutes or description were changed, counted once each.
    let mut edited = vec![false; total];
    let mut show = true;
    while i < total {
        if show {
            say(&term, &render::review_card(&queue[i], i + 1, total))?;
        }
        show = false;
        say(&term, &format!("{KEYS} > "))?;
        let key = tokio::task::block_in_place(|| term.read_key()).map_err(terminal)?;
        let changes = match key {
            Key::Char('a') => status(EntryStatus::Approved),
            Key::Char('r') => status(EntryStatus::Rejected),
            Key::Char('s') => {
                say(&term, "skipped\n")?;
                tally.skipped += 1;
                i += 1;
                show = true;
                continue;
            }
            Key::Char('q') | Key::Escape => {
                say(&term, "quit\n")?;
                break;
            }
            Key::Char('?') => {
                say(&term, &format!("\n{HELP}"))?;
                continue;
            }
            Key::Char('w') => {
                say(&term, &format!("\n{}", why(ctx, user, &queue[i]).await))?;
                continue;
            }
            Key::Char('o') => {
                say(&term, &format!("\n{}", open(ctx, user, &queue[i]).await))?;
                continue;
            }
            Key::Char('u') => {
                let Some(undo) = last.take() else {
                    say(&term, "\n  nothing to undo yet\n")?;
                    continue;
                };
                match restore(ctx, user, &undo.before).await {
                    Ok(entry) => {
                        match undo.counted {
                            Counted::Approved => tally.approved -= 1,
                            Counted::Rejected => tally.rejected -= 1,
                            Counted::Edited => {
                                tally.edited -= 1;
                                edited[undo.index] = false;
                            }
                            Counted::Nothing => {}
                        }
                        say(&term, "\n  undone\n")?;
                        i = undo.index;
                        queue[i] = entry;
                        show = true;
                    }
                    Err(e) => say(&term, &format!("\n  ! could not undo: {e}\n"))?,
                }
                continue;
            }
            Key::Char('m') => {
                let prompt = format!(
                    "\nMinutes to bill (now {}; Enter keeps them): ",
                    queue[i].billed_minutes
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
            other => {
                // A key that does nothing says so, rather than leaving the person
                // wondering whether it was taken.
                let shown = match other {
                    Key::Char(c) => format!("`{c}`"),
                    Key::Enter => "Enter".to_owned(),
                    _ => "that key".to_owned(),
                };
                say(
                    &term,
                    &format!("\n  {shown} does nothing here; ? shows the keys\n"),
                )?;
                continue;
            }
        };
        let decided = changes.status;
        let before = queue[i].clone();
        match save(ctx, user, &before.id, changes).await {
            Ok(now) => queue[i] = now,
            // A value the tool refused: say why and ask again about this entry.
            Err(e) if matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::NotFound) => {
                say(&term, &format!("\n  ! {}\n", super::words::message(&e)))?;
                continue;
            }
            Err(e) => return Err(e),
        }
        let counted = match decided {
            Some(EntryStatus::Approved) => {
                say(&term, "approved\n")?;
                tally.approved += 1;
                Counted::Approved
            }
            Some(_) => {
                say(&term, "rejected\n")?;
                tally.rejected += 1;
                Counted::Rejected
            }
            // An edit stays on the entry, so it can be approved as corrected.
            None if !edited[i] => {
                tally.edited += 1;
                edited[i] = true;
                Counted::Edited
            }
            None => Counted::Nothing,
        };
        last = Some(Last {
            index: i,
            before,
            counted,
        });
        if decided.is_some() {
            i += 1;
        }
        show = true;
    }
    tally.left = (total - i.min(total)) as u64;
    Ok(Answer::new(&tally, render::tally(&tally)))
}

/// Puts an entry's reviewable values back as they were before the last action.
async fn restore(ctx: &Context, user: &UserId, before: &TimeEntry) -> Result<TimeEntry, Error> {
    let changes = update::Changes {
        status: Some(before.status),
        description: Some(before.description.clone()),
        billed_minutes: Some(before.billed_minutes),
        ..Default::default()
    };
    save(ctx, user, &before.id, changes).await
}

/// Why the entry is as it is: its status and confidence, and the analyzer's reasons
/// when the mail source (given to `review` like to `scan`) has the message.
async fn why(ctx: &Context, user: &UserId, e: &TimeEntry) -> String {
    let mut text = format!(
        "  {} · confidence {:.2} · by {}\n",
        e.status.as_str(),
        e.confidence,
        e.analyzer
    );
    let Some(id) = message_id(e) else {
        text.push_str("  It was added or merged by a person, not made from one message.\n");
        return text;
    };
    let args = analyze::Args {
        message_id: Some(id.to_owned()),
        raw_email: None,
        save: None,
    };
    match tools::run::<analyze::AnalyzeTimeEntry>(ctx, user, args, &NoProgress).await {
        Ok(out) => {
            for r in out.reasons {
                text.push_str(&format!("  - {r}\n"));
            }
        }
        Err(e) => text.push_str(&unreadable(&e)),
    }
    text
}

/// The message the entry came from: who, when, the subject and its new text.
async fn open(ctx: &Context, user: &UserId, e: &TimeEntry) -> String {
    let Some(id) = message_id(e) else {
        return "  It was added or merged by a person; there is no message to open.\n".to_owned();
    };
    let read = async {
        let raw = ctx.source(user).await?.get(id).await?;
        crate::mail::parse::parse_email(&raw).map_err(|e| Error::invalid("message", e.to_string()))
    };
    match read.await {
        Ok(m) => {
            let who = |a: &crate::domain::Address| a.email.clone();
            format!(
                "  From: {}\n  To: {}\n  Date: {}\n  Subject: {}\n\n{}\n",
                m.from.as_ref().map(who).unwrap_or_default(),
                m.to.iter().map(who).collect::<Vec<_>>().join(", "),
                m.date.map(|d| d.to_rfc2822()).unwrap_or_default(),
                m.subject,
                m.new_text.trim_end()
            )
        }
        Err(e) => unreadable(&e),
    }
}

/// The entry's message id in the mail source, if it came from one.
fn message_id(e: &TimeEntry) -> Option<&str> {
    let synthetic = ["manual:", "merge:", "rollup:"];
    (!synthetic.iter().any(|p| e.message_id.starts_with(p))).then_some(e.message_id.as_str())
}

/// What to do when the message cannot be read: usually no mail source was given.
fn unreadable(e: &Error) -> String {
    match e {
        Error::Mail(crate::mail::MailError::NoSource) => {
            "  The message is in your mailbox: start review with the mail source you \
             scanned (`billable --mbox FILE review`, or --maildir, --eml-dir, --gmail) \
             to see it and the reasons.\n"
                .to_owned()
        }
        other => format!(
            "  ! the message could not be read: {}\n",
            super::words::message(other)
        ),
    }
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
