//! An mbox file (mboxrd / mboxo, as Google Takeout writes it), read as a stream.
//!
//! The file is read line by line as bytes, one message in memory at a time, so a
//! mailbox of any size is listed in flat memory. Messages start at a `From ` line
//! that follows a blank line (or opens the file); `>From ` quoting is undone
//! (mboxrd: a line matching `^>+From ` loses one `>`).
//!
//! A file that does not start with a `From ` line is not an mbox. When it starts with
//! a header line it is read as one message (someone passed a single .eml); otherwise
//! the listing yields one `Malformed` error, so a wrong file is reported, not
//! silently scanned as nothing.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures::stream::BoxStream;

pub use super::files::MAX_MESSAGE_BYTES;
use super::files::{MAX_LINE_BYTES, keep_line, local_listing, run_blocking};
use super::parse::raw_from_bytes;
use super::{Listed, MailError, MailQuery, MailSource, RawEmail, io_error};

/// An mbox file on disk.
#[derive(Debug, Clone)]
pub struct MboxSource {
    path: PathBuf,
}

impl MboxSource {
    /// Opens an mbox file; fails when it cannot be read.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, MailError> {
        let path = path.into();
        let meta = std::fs::metadata(&path).map_err(|source| io_error(&path, source))?;
        if meta.is_dir() {
            return Err(io_error(
                &path,
                std::io::Error::other("this is a directory; use --maildir or --eml-dir for it"),
            ));
        }
        File::open(&path).map_err(|source| io_error(&path, source))?;
        Ok(MboxSource { path })
    }

    /// The file this source reads.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl MailSource for MboxSource {
    fn describe(&self) -> String {
        format!("mbox {}", self.path.display())
    }

    fn list<'a>(&'a self, query: &'a MailQuery) -> BoxStream<'a, Result<Listed, MailError>> {
        let path = self.path.clone();
        local_listing(query.clone(), move || {
            let file = File::open(&path).map_err(|source| io_error(&path, source))?;
            Ok(Messages {
                reader: MboxReader::new(BufReader::new(file)),
                path,
            })
        })
    }

    async fn get(&self, id: &str) -> Result<RawEmail, MailError> {
        let path = self.path.clone();
        let id = id.to_owned();
        run_blocking(move || find_by_id(&path, &id)).await
    }
}

fn find_by_id(path: &Path, id: &str) -> Result<RawEmail, MailError> {
    let file = File::open(path).map_err(|source| io_error(path, source))?;
    let mut reader = MboxReader::new(BufReader::new(file));
    while let Some(next) = reader.next_message() {
        match next {
            Ok(bytes) => {
                let raw = raw_from_bytes(bytes, &[]);
                if raw.id == id {
                    return Ok(raw);
                }
            }
            Err(ReadError::TooLarge { .. }) => continue,
            Err(ReadError::NotMbox) => break,
            Err(ReadError::Io(source)) => return Err(io_error(path, source)),
        }
    }
    Err(MailError::NotFound(id.to_owned()))
}

/// The file's messages as a blocking iterator; `local_listing` dedupes and filters.
struct Messages {
    path: PathBuf,
    reader: MboxReader<BufReader<File>>,
}

impl Iterator for Messages {
    type Item = Result<RawEmail, MailError>;

    /// After a `NotMbox` or I/O error the reader is finished, so the listing ends.
    fn next(&mut self) -> Option<Self::Item> {
        let item = match self.reader.next_message()? {
            Ok(bytes) => Ok(raw_from_bytes(bytes, &[])),
            Err(ReadError::TooLarge { index }) => Err(MailError::Malformed(format!(
                "message {index} of {} is larger than {} MiB and was skipped",
                self.path.display(),
                MAX_MESSAGE_BYTES / (1024 * 1024)
            ))),
            Err(ReadError::NotMbox) => Err(MailError::Malformed(format!(
                "{} is not an mbox file: it does not start with a `From ` line",
                self.path.display()
            ))),
            Err(ReadError::Io(source)) => Err(io_error(&self.path, source)),
        };
        Some(item)
    }
}

/// Why a message could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Message number `index` (1-based) exceeded `MAX_MESSAGE_BYTES`; the reader has
    /// skipped to the next message.
    TooLarge { index: usize },
    /// The file does not start with `From ` nor with a header line.
    NotMbox,
    /// Reading the file failed; nothing more can be read.
    Io(std::io::Error),
}

/// Splits an mbox byte stream into messages.
pub(crate) struct MboxReader<R> {
    reader: R,
    started: bool,
    /// Treat the whole file as one message (no `From ` line, but headers).
    single_message: bool,
    finished: bool,
    index: usize,
    /// The current line, at most [`MAX_LINE_BYTES`] of it and its end of line.
    line: Vec<u8>,
    /// The current line's whole length, read or not.
    line_len: usize,
}

impl<R: BufRead> MboxReader<R> {
    pub(crate) fn new(reader: R) -> Self {
        MboxReader {
            reader,
            started: false,
            single_message: false,
            finished: false,
            index: 0,
            line: Vec::new(),
            line_len: 0,
        }
    }

    fn read_line(&mut self) -> std::io::Result<bool> {
        self.line_len = read_capped_line(&mut self.reader, &mut self.line)?;
        Ok(self.line_len > 0)
    }

    /// The next message's bytes (separator removed, `>From ` unescaped), `None` at
    /// the end of the file.
    pub(crate) fn next_message(&mut self) -> Option<Result<Vec<u8>, ReadError>> {
        if self.finished {
            return None;
        }
        if !self.started {
            self.started = true;
            // Skip leading blank lines, then decide what kind of file this is.
            loop {
                match self.read_line() {
                    Ok(false) => {
                        self.finished = true;
                        return None;
                    }
                    Ok(true) if is_blank(&self.line) => continue,
                    Ok(true) => break,
                    Err(e) => return Some(self.fail(e)),
                }
            }
            if self.line.starts_with(b"From ") {
                // The separator of the first message; nothing to keep.
            } else if looks_like_header(&self.line) {
                self.single_message = true;
            } else {
                self.finished = true;
                return Some(Err(ReadError::NotMbox));
            }
        }
        self.index += 1;
        let mut message: Vec<u8> = Vec::new();
        // Bytes of the message read, kept or not: the size limit is on these.
        let mut read = 0;
        let mut too_large = false;
        if self.single_message {
            // The first header line is already in `self.line`.
            message.extend_from_slice(&self.line);
            read = message.len();
        }
        let mut previous_blank = false;
        loop {
            match self.read_line() {
                Ok(false) => {
                    self.finished = true;
                    break;
                }
                Ok(true) => {}
                Err(e) => return Some(self.fail(e)),
            }
            if !self.single_message
                && self.line.starts_with(b"From ")
                && (previous_blank || looks_like_separator(&self.line))
            {
                break;
            }
            previous_blank = is_blank(&self.line);
            if too_large {
                continue;
            }
            let unescaped = unescape_from(&self.line);
            read += self.line_len - (self.line.len() - unescaped.len());
            if read > MAX_MESSAGE_BYTES {
                too_large = true;
                message = Vec::new();
                continue;
            }
            // An attachment's body is read and counted, not kept.
            keep_line(&mut message, unescaped);
        }
        if too_large {
            return Some(Err(ReadError::TooLarge { index: self.index }));
        }
        if !self.single_message {
            // The blank line before the next separator belongs to the mbox format.
            if message.ends_with(b"\r\n\r\n") {
                message.truncate(message.len() - 2);
            } else if message.ends_with(b"\n\n") {
                message.truncate(message.len() - 1);
            }
        }
        Some(Ok(message))
    }

    fn fail(&mut self, e: std::io::Error) -> Result<Vec<u8>, ReadError> {
        self.finished = true;
        Err(ReadError::Io(e))
    }
}

/// Reads the next line into `line`, keeping at most [`MAX_LINE_BYTES`] of it and its
/// end of line, and returns its whole length (0 at the end): a 200 MB "line" is read
/// through, not into memory, and still counts whole towards a message's size.
fn read_capped_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<usize> {
    line.clear();
    let mut len = 0;
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(len);
        }
        let (used, ends) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = MAX_LINE_BYTES.saturating_sub(line.len());
        line.extend_from_slice(buf.get(..used.min(room)).unwrap_or_default());
        reader.consume(used);
        len += used;
        if ends {
            if line.last() != Some(&b'\n') {
                line.push(b'\n');
            }
            return Ok(len);
        }
    }
}

/// How many messages the mbox at `path` holds, by the separator rule the reader uses,
/// without keeping any message (a progress bar's length); `None` when it cannot be
/// read or is not an mbox.
pub fn count_messages(path: &Path) -> Option<u64> {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path).ok()?);
    let mut line = Vec::new();
    let (mut count, mut previous_blank, mut started) = (0u64, false, false);
    while read_capped_line(&mut reader, &mut line).ok()? > 0 {
        if !started {
            if !is_blank(&line) {
                started = true;
                if line.starts_with(b"From ") {
                    count = 1;
                } else if looks_like_header(&line) {
                    return Some(1);
                } else {
                    return None;
                }
            }
        } else if line.starts_with(b"From ") && (previous_blank || looks_like_separator(&line)) {
            count += 1;
        }
        previous_blank = is_blank(&line);
    }
    Some(count)
}

/// `From sender Mon Jan  1 00:00:00 2024` (asctime, ends with the year), for writers
/// that do not leave a blank line between messages.
fn looks_like_separator(line: &[u8]) -> bool {
    let trimmed = line.trim_ascii_end();
    let year = trimmed.len() >= 4
        && trimmed
            .get(trimmed.len() - 4..)
            .is_some_and(|y| y.iter().all(u8::is_ascii_digit));
    year && trimmed.contains(&b':')
}

fn is_blank(line: &[u8]) -> bool {
    line.iter()
        .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
}

/// `Name: value` with an RFC 5322 field name.
fn looks_like_header(line: &[u8]) -> bool {
    match line.iter().position(|&b| b == b':') {
        Some(colon) if colon > 0 => line
            .get(..colon)
            .is_some_and(|name| name.iter().all(|&b| b.is_ascii_graphic() && b != b':')),
        _ => false,
    }
}

/// mboxrd: `>From `, `>>From `, … lose one `>`.
fn unescape_from(line: &[u8]) -> &[u8] {
    let quotes = line.iter().take_while(|&&b| b == b'>').count();
    if quotes > 0
        && line
            .get(quotes..)
            .is_some_and(|rest| rest.starts_with(b"From "))
    {
        line.get(1..).unwrap_or(line)
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use std::io::Write;

    fn write_mbox(content: &[u8]) -> tempfile::NamedTempFile {
        let Ok(mut file) = tempfile::NamedTempFile::new() else {
            panic!("temp file");
        };
        assert!(file.write_all(content).is_ok());
        file
    }

    #[tokio::test]
    async fn a_25_mb_attachment_is_read_and_counted_but_not_kept() {
        let mut mbox = b"From a@b Mon Nov  2 09:00:00 2026\n".to_vec();
        mbox.extend(crate::mail::files::tests::with_attachment(25));
        mbox.extend(b"\nFrom a@b Mon Nov  2 10:00:00 2026\nMessage-ID: <next@x>\n\nhello\n");
        let file = write_mbox(&mbox);
        let source = MboxSource::open(file.path()).unwrap();
        let raws = ok_raws(list_all(&source, &MailQuery::default()).await);
        assert_eq!(raws.len(), 2);
        assert!(raws[0].bytes.len() < 512 * 1024, "{}", raws[0].bytes.len());
        let email = crate::mail::parse::parse_email(&raws[0]).unwrap();
        assert_eq!(email.attachments, 1);
        assert_eq!(raws[1].id, "next@x");
    }

    async fn list_all(source: &MboxSource, query: &MailQuery) -> Vec<Result<Listed, MailError>> {
        source.list(query).collect().await
    }

    fn ok_raws(items: Vec<Result<Listed, MailError>>) -> Vec<RawEmail> {
        items
            .into_iter()
            .map(|item| match item {
                Ok(Listed { raw: Some(raw), .. }) => raw,
                other => panic!("unexpected item {other:?}"),
            })
            .collect()
    }

    const TAKEOUT: &str = "From 1800000000000000001@xxx Tue Jun 04 09:30:00 +0000 2024\n\
X-GM-THRID: 1800000000000000001\n\
X-Gmail-Labels: Sent,Important,\"Clients, Acme\"\n\
From: me@example.com\n\
To: ann@acme.com\n\
Subject: Draft\n\
Date: Tue, 4 Jun 2024 09:30:00 +0000\n\
Message-ID: <one@example.com>\n\
\n\
Here is the draft.\n\
>From the top, please.\n\
>>From nested stays quoted once.\n\
From time to time a line like this is unescaped in mboxo.\n\
\n\
From 1800000000000000002@xxx Tue Jun 04 10:00:00 +0000 2024\n\
X-Gmail-Labels: Inbox\n\
From: ann@acme.com\n\
To: me@example.com\n\
Subject: Re: Draft\n\
Date: Tue, 4 Jun 2024 10:00:00 +0000\n\
Message-ID: <two@acme.com>\n\
\n\
Thanks!\n\
\n\
From 1800000000000000003@xxx Tue Jun 04 11:00:00 +0000 2024\n\
X-Gmail-Labels: Inbox\n\
From: ann@acme.com\n\
Subject: Re: Draft (duplicate copy)\n\
Message-ID: <two@acme.com>\n\
\n\
Thanks again!\n\
\n\
From MAILER-DAEMON Tue Jun 04 12:00:00 2024\n\
From: noid@acme.com\n\
Subject: no message id\n\
Date: Tue, 4 Jun 2024 12:00:00 +0000\n\
\n\
body\n";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn takeout_mbox_is_split_unescaped_labelled_and_deduplicated() {
        let file = write_mbox(TAKEOUT.as_bytes());
        let Ok(source) = MboxSource::open(file.path()) else {
            panic!("open");
        };
        let raws = ok_raws(list_all(&source, &MailQuery::default()).await);
        let ids: Vec<_> = raws.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids.len(), 3, "{ids:?}");
        assert_eq!(ids.first().copied(), Some("one@example.com"));
        assert_eq!(ids.get(1).copied(), Some("two@acme.com"));
        assert!(ids.get(2).is_some_and(|id| id.starts_with("sha256:")));

        let first = &raws[0];
        assert_eq!(first.labels, ["Sent", "Important", "Clients, Acme"]);
        assert_eq!(first.thread_id.as_deref(), Some("1800000000000000001"));
        let text = String::from_utf8_lossy(&first.bytes);
        assert!(text.contains("\nFrom the top, please.\n"), "{text}");
        assert!(text.contains("\n>From nested stays quoted once.\n"));
        assert!(
            text.ends_with("unescaped in mboxo.\n"),
            "separator blank line dropped: {text:?}"
        );
        assert!(
            !text.starts_with("From 18"),
            "the separator is not part of the message"
        );

        let second = String::from_utf8_lossy(&raws[1].bytes).into_owned();
        assert!(
            second.contains("Thanks!") && !second.contains("again"),
            "the first copy wins"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_query_filters_inside_the_source() {
        let file = write_mbox(TAKEOUT.as_bytes());
        let Ok(source) = MboxSource::open(file.path()) else {
            panic!("open");
        };
        let query = MailQuery {
            query: Some("label:sent".into()),
            ..MailQuery::default()
        };
        let ids: Vec<_> = ok_raws(list_all(&source, &query).await)
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, ["one@example.com"]);

        let bad = MailQuery {
            query: Some("older_than:1y".into()),
            ..MailQuery::default()
        };
        let items = list_all(&source, &bad).await;
        assert!(matches!(items.as_slice(), [Err(MailError::Query(_))]));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn get_finds_a_message_by_id_or_reports_not_found() {
        let file = write_mbox(TAKEOUT.as_bytes());
        let Ok(source) = MboxSource::open(file.path()) else {
            panic!("open");
        };
        let found = source.get("two@acme.com").await;
        assert!(found.is_ok_and(|r| String::from_utf8_lossy(&r.bytes).contains("Thanks!")));
        assert!(matches!(
            source.get("nope").await,
            Err(MailError::NotFound(_))
        ));
    }

    #[test]
    fn listing_works_without_a_tokio_runtime() {
        let file = write_mbox(TAKEOUT.as_bytes());
        let Ok(source) = MboxSource::open(file.path()) else {
            panic!("open");
        };
        let query = MailQuery::default();
        let items: Vec<_> = futures::executor::block_on(source.list(&query).collect());
        assert_eq!(items.len(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_single_eml_passed_as_mbox_is_one_message_and_garbage_is_reported() {
        let file = write_mbox(
            b"Message-ID: <solo@x>\r\nSubject: solo\r\n\r\nFrom here on a body line.\r\n",
        );
        let Ok(source) = MboxSource::open(file.path()) else {
            panic!("open");
        };
        let raws = ok_raws(list_all(&source, &MailQuery::default()).await);
        assert_eq!(raws.len(), 1);
        assert!(String::from_utf8_lossy(&raws[0].bytes).contains("From here on"));

        let garbage = write_mbox(b"\x00\x01 not mail at all\n");
        let Ok(source) = MboxSource::open(garbage.path()) else {
            panic!("open");
        };
        let items = list_all(&source, &MailQuery::default()).await;
        assert!(matches!(items.as_slice(), [Err(MailError::Malformed(_))]));

        let empty = write_mbox(b"");
        let Ok(source) = MboxSource::open(empty.path()) else {
            panic!("open");
        };
        assert!(list_all(&source, &MailQuery::default()).await.is_empty());
    }

    #[test]
    fn opening_a_missing_file_is_an_io_error() {
        assert!(matches!(
            MboxSource::open("/nonexistent/billable.mbox"),
            Err(MailError::Io { .. })
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_five_thousand_message_mbox_streams_every_message() {
        let Ok(mut file) = tempfile::NamedTempFile::new() else {
            panic!("temp file");
        };
        {
            let mut w = std::io::BufWriter::new(file.as_file_mut());
            for i in 0..5000 {
                let label = if i % 2 == 0 { "Sent" } else { "Inbox" };
                let ok = write!(
                    w,
                    "From {i}@xxx Tue Jun 04 09:30:00 +0000 2024\nX-Gmail-Labels: {label}\nFrom: a{i}@acme.com\nTo: me@example.com\nSubject: message {i}\nDate: Tue, 4 Jun 2024 09:30:00 +0000\nMessage-ID: <m{i}@acme.com>\n\nbody of {i}\nFrom here a body line.\n\n"
                );
                assert!(ok.is_ok());
            }
            assert!(w.flush().is_ok());
        }
        let Ok(source) = MboxSource::open(file.path()) else {
            panic!("open");
        };
        let mut count = 0;
        let all = MailQuery::default();
        let mut stream = source.list(&all);
        while let Some(item) = stream.next().await {
            assert!(item.is_ok());
            count += 1;
        }
        assert_eq!(count, 5000);
        let sent = MailQuery {
            query: Some("label:sent".into()),
            ..MailQuery::default()
        };
        assert_eq!(source.list(&sent).count().await, 2500);
    }

    #[test]
    fn mboxrd_unescaping_removes_exactly_one_quote() {
        assert_eq!(unescape_from(b">From x\n"), b"From x\n");
        assert_eq!(unescape_from(b">>>From x\n"), b">>From x\n");
        assert_eq!(unescape_from(b">Fromage\n"), b">Fromage\n");
        assert_eq!(unescape_from(b"> From x\n"), b"> From x\n");
    }
}
