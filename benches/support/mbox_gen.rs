//! Generates a realistic Takeout-style mbox of any size for benchmarks: client mail in
//! both directions with quoted history and signatures, attachments, newsletters,
//! notifications, invites and personal mail, with the settings that match it.
//!
//! Several benchmarks, tests and an example include it; each uses only some of it.
#![allow(dead_code)]

use std::io::Write;

/// Settings (a configure patch) under which the generated clients are recognised.
pub const SETTINGS: &str = r#"{
  "timezone": "America/New_York",
  "my_addresses": ["owner@firm.example"],
  "default_hourly_rate": 250,
  "clients": [
    {"name": "Acme", "domains": ["acme.com"], "addresses": [], "keywords": ["Acme"], "matter": "General", "hourly_rate": 300},
    {"name": "Globex", "domains": ["globex.io"], "addresses": [], "keywords": [], "matter": null, "hourly_rate": null},
    {"name": "Initech", "domains": ["initech.net"], "addresses": [], "keywords": [], "matter": null, "hourly_rate": 200},
    {"name": "Umbrella", "domains": ["umbrella.co"], "addresses": [], "keywords": [], "matter": null, "hourly_rate": null}
  ]
}"#;

const CLIENT_DOMAINS: [&str; 4] = ["acme.com", "mail.globex.io", "initech.net", "umbrella.co"];
const WORDS: [&str; 24] = [
    "agreement",
    "review",
    "the",
    "clause",
    "draft",
    "please",
    "schedule",
    "liability",
    "we",
    "should",
    "consider",
    "notice",
    "and",
    "revise",
    "section",
    "payment",
    "terms",
    "before",
    "closing",
    "call",
    "budget",
    "approve",
    "changes",
    "counsel",
];

fn text(seed: usize, words: usize) -> String {
    let mut out = String::with_capacity(words * 8);
    for i in 0..words {
        out.push_str(WORDS[(seed * 7 + i * 13) % WORDS.len()]);
        out.push(if i % 14 == 13 { '\n' } else { ' ' });
    }
    out
}

/// Writes `n` messages to `w`: in every ten, six of client mail, an invite, a
/// newsletter, a client portal's notification and a personal message.
pub fn write_mbox(w: &mut impl Write, n: usize) -> std::io::Result<()> {
    for i in 0..n {
        write_message(w, i, i % 10, CLIENT_DOMAINS[i % CLIENT_DOMAINS.len()])?;
    }
    Ok(())
}

/// Writes `n` messages of which one in ten involves a client (mail in both
/// directions and invites), as in a real lawyer's mailbox; the rest are newsletters,
/// social notifications, colleagues' and personal mail, none naming a client.
pub fn write_mostly_other_mbox(w: &mut impl Write, n: usize) -> std::io::Result<()> {
    const CLIENT: [usize; 4] = [0, 3, 4, 8];
    const OTHER: [usize; 4] = [6, 9, 10, 11];
    for i in 0..n {
        let kind = if i % 10 == 0 {
            CLIENT[(i / 10) % CLIENT.len()]
        } else {
            OTHER[i % OTHER.len()]
        };
        // Each client in turn, whatever the message's number.
        write_message(w, i, kind, CLIENT_DOMAINS[(i / 10) % CLIENT_DOMAINS.len()])?;
    }
    Ok(())
}

/// Writes `n` client messages, numbered from `first`, each with an attachment of
/// `megabytes` MB (base64, as mail carries it): the largest mail Gmail accepts is
/// 25 MB of attachments.
pub fn write_big_attachments(
    w: &mut impl Write,
    first: usize,
    n: usize,
    megabytes: usize,
) -> std::io::Result<()> {
    // 57 bytes of data per 76-character base64 line.
    let line = "JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PC9UeXBlL0NhdGFsb2c+PgplbmRvYmoKJcfsj6IKMSAw";
    let lines = megabytes * 1024 * 1024 / 57;
    for i in first..first + n {
        writeln!(
            w,
            "From 18{i:017}@xxx Mon Nov 02 09:00:00 +0000 2026\nX-Gmail-Labels: Inbox\nFrom: Client <c1@acme.com>\nTo: owner@firm.example\nSubject: The signed agreement, scanned\nDate: Mon, 02 Nov 2026 09:{:02}:00 -0500\nMessage-ID: <big-{i}@bench.example>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b{i}\"\n\n--b{i}\nContent-Type: text/plain\n\n{}\n--b{i}\nContent-Type: application/pdf; name=\"scan.pdf\"\nContent-Disposition: attachment; filename=\"scan.pdf\"\nContent-Transfer-Encoding: base64\n",
            i % 60,
            text(i, 80)
        )?;
        for _ in 0..lines {
            writeln!(w, "{line}")?;
        }
        writeln!(w, "--b{i}--\n")?;
    }
    Ok(())
}

/// Writes message number `i` in the shape `kind` (0 to 11); client mail is with
/// `domain`.
fn write_message(w: &mut impl Write, i: usize, kind: usize, domain: &str) -> std::io::Result<()> {
    let day = 1 + (i / 400) % 28;
    let hour = 8 + i % 10;
    writeln!(
        w,
        "From 17{i:017}@xxx Mon Nov {day:02} {hour:02}:00:00 +0000 2026"
    )?;
    writeln!(
        w,
        "X-GM-THRID: {}",
        1_800_000_000_000_000_000u64 + (i / 3) as u64
    )?;
    let date = format!(
        "Date: Mon, {day:02} Nov 2026 {hour:02}:{:02}:00 -0500",
        i % 60
    );
    let id = format!("Message-ID: <gen-{i}@bench.example>");
    match kind {
        // The owner writes to a client, with quoted history and a signature.
        0..=2 => {
            writeln!(
                w,
                "X-Gmail-Labels: Sent\nFrom: Owner <owner@firm.example>\nTo: Client <c{}@{domain}>\nSubject: Re: matter {}\n{date}\n{id}\n",
                i % 50,
                i % 97
            )?;
            writeln!(
                w,
                "{}\n\n-- \nOwner, Firm LLP\n\nOn Fri, Nov 1, 2026 at 9:00 AM Client <c@{domain}> wrote:\n> {}\n> {}",
                text(i, 60 + i % 140),
                text(i + 1, 12),
                text(i + 2, 12)
            )?;
        }
        // A client writes, sometimes with an attachment.
        3..=5 => {
            writeln!(
                w,
                "X-Gmail-Labels: Inbox\nFrom: Client <c{}@{domain}>\nTo: owner@firm.example\nSubject: matter {}\n{date}\n{id}",
                i % 50,
                i % 97
            )?;
            if i.is_multiple_of(2) {
                writeln!(
                    w,
                    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b{i}\"\n\n--b{i}\nContent-Type: text/plain\n\n{}\n--b{i}\nContent-Type: application/pdf; name=\"doc.pdf\"\nContent-Disposition: attachment; filename=\"doc.pdf\"\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQKJcfsj6IKMSAwIG9iago8PC9UeXBlL0NhdGFsb2c+PgplbmRvYmoK\n--b{i}--",
                    text(i, 40 + i % 200)
                )?;
            } else {
                writeln!(w, "\n{}", text(i, 40 + i % 200))?;
            }
        }
        // Newsletters and notifications.
        6 => writeln!(
            w,
            "X-Gmail-Labels: Inbox,Category Promotions\nFrom: News <news@letters.example>\nTo: owner@firm.example\nSubject: Weekly digest {i}\n{date}\n{id}\nList-Unsubscribe: <mailto:u@letters.example>\n\n{}",
            text(i, 300)
        )?,
        7 => writeln!(
            w,
            "X-Gmail-Labels: Inbox\nFrom: Portal <no-reply@{domain}>\nTo: owner@firm.example\nSubject: Your statement is ready\n{date}\n{id}\n\n{}",
            text(i, 30)
        )?,
        // An invite from a client.
        8 => writeln!(
            w,
            "X-Gmail-Labels: Inbox\nFrom: Client <c1@{domain}>\nTo: owner@firm.example\nSubject: Invitation\n{date}\n{id}\nMIME-Version: 1.0\nContent-Type: text/calendar; method=REQUEST\n\nBEGIN:VCALENDAR\nMETHOD:REQUEST\nBEGIN:VEVENT\nUID:gen-{i}@{domain}\nSEQUENCE:0\nDTSTART:202611{day:02}T150000Z\nDTEND:202611{day:02}T160000Z\nSUMMARY:Call\nEND:VEVENT\nEND:VCALENDAR"
        )?,
        // A colleague at the firm.
        10 => writeln!(
            w,
            "X-Gmail-Labels: Inbox\nFrom: Sam Lee <sam@firm.example>\nTo: owner@firm.example\nSubject: Lunch on Friday?\n{date}\n{id}\n\n{}",
            text(i, 25)
        )?,
        // A social network's notification.
        11 => writeln!(
            w,
            "X-Gmail-Labels: Inbox,Category Social\nFrom: Network <notify@social.example>\nTo: owner@firm.example\nSubject: You have 3 new connections\n{date}\n{id}\n\n{}",
            text(i, 20)
        )?,
        // Personal mail.
        _ => writeln!(
            w,
            "X-Gmail-Labels: Inbox\nFrom: Friend <friend{}@gmail.com>\nTo: owner@firm.example\nSubject: weekend\n{date}\n{id}\n\n{}",
            i % 20,
            text(i, 50)
        )?,
    }
    writeln!(w)?;
    Ok(())
}
