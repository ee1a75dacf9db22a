//! What the local sources share. An mbox, a Maildir and a folder of `.eml` files are
//! read the same way: on a blocking thread, one message at a time, each message
//! deduplicated by id and filtered by the query before it is listed
//! (`local_listing`). Maildir and the `.eml` folder differ only in where their files
//! are (`Layout`); the source they share is `FilesSource`.

use std::collections::HashSet;
use std::fs::ReadDir;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures::stream::BoxStream;

use super::parse::raw_from_bytes;
use super::query::{CompiledQuery, HeaderInfo};
use super::{Listed, MailError, MailQuery, MailSource, RawEmail, io_error};

/// The largest single message read into memory (64 MiB). A bigger "message" is
/// almost always a broken file; it is skipped and reported.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// How much of a message is kept whole (256 KiB, four times the text an analyzer
/// reads). Past it, lines of base64 (the body of an attachment) are read and
/// dropped: the analyzer needs an attachment's headers, never its content, so a
/// message with a 25 MB attachment costs about this much memory, not its size. Text
/// past it is kept (up to `MAX_MESSAGE_BYTES`).
pub const KEEP_WHOLE_BYTES: usize = 256 * 1024;

/// Whether a message line, with `kept` bytes of the message kept before it, is
/// dropped: past [`KEEP_WHOLE_BYTES`], a line of 60 to 998 base64 characters. Lines
/// of an encoded body are 76 characters (multiples of 4), so what is kept of a part
/// still decodes, to a prefix of it.
pub(crate) fn drops_line(kept: usize, line: &[u8]) -> bool {
    if kept <= KEEP_WHOLE_BYTES {
        return false;
    }
    let text = line.trim_ascii_end();
    (60..=998).contains(&text.len())
        && text
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

/// The most of one line a message keeps (1 MiB). RFC 5322 allows 998 bytes; what is
/// longer is minified HTML, a broken mailer's unwrapped base64, or an attack, and
/// none of it is worth more to an analyzer than its first megabyte.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Adds what a message keeps of `line` to `kept`: nothing when [`drops_line`],
/// otherwise at most [`MAX_LINE_BYTES`] of it, still ending the line.
pub(crate) fn keep_line(kept: &mut Vec<u8>, line: &[u8]) {
    if drops_line(kept.len(), line) {
        return;
    }
    match line.get(..MAX_LINE_BYTES) {
        Some(cut) if cut.len() < line.len() => {
            kept.extend_from_slice(cut);
            if line.ends_with(b"\n") {
                kept.push(b'\n');
            }
        }
        _ => kept.extend_from_slice(line),
    }
}

/// A message as kept ([`keep_line`]): itself when it is small.
pub(crate) fn slim(bytes: Vec<u8>) -> Vec<u8> {
    if bytes.len() <= KEEP_WHOLE_BYTES {
        return bytes;
    }
    let mut kept = Vec::with_capacity(KEEP_WHOLE_BYTES + 64 * 1024);
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        keep_line(&mut kept, line);
    }
    kept.shrink_to_fit();
    kept
}

/// How a kind of folder holds its messages: what Maildir and a folder of `.eml`
/// files differ in. The rest of such a source is `FilesSource`.
pub trait Layout: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// The kind of source, as `describe` names it (`maildir`, `eml-dir`).
    const KIND: &'static str;

    /// Whether a readable directory, whose `entries` these are, holds mail this way;
    /// the error says what to pass instead. Any readable directory does by default.
    fn check(_dir: &Path, _entries: ReadDir) -> Result<(), MailError> {
        Ok(())
    }

    /// Every message file below `dir` with the labels its place gives it, in listing
    /// order.
    fn files(dir: &Path) -> Result<Vec<(PathBuf, Vec<String>)>, MailError>;
}

/// A directory of message files laid out as `L` says, read one file at a time: only
/// the list of paths is held in memory.
#[derive(Debug, Clone)]
pub struct FilesSource<L> {
    dir: PathBuf,
    layout: PhantomData<L>,
}

impl<L: Layout> FilesSource<L> {
    /// Opens a directory; fails when it cannot be read or does not look like `L`
    /// (`Layout::check`).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, MailError> {
        let dir = dir.into();
        let entries = std::fs::read_dir(&dir).map_err(|source| io_error(&dir, source))?;
        L::check(&dir, entries)?;
        Ok(FilesSource {
            dir,
            layout: PhantomData,
        })
    }
}

#[async_trait]
impl<L: Layout> MailSource for FilesSource<L> {
    fn describe(&self) -> String {
        format!("{} {}", L::KIND, self.dir.display())
    }

    fn list<'a>(&'a self, query: &'a MailQuery) -> BoxStream<'a, Result<Listed, MailError>> {
        let dir = self.dir.clone();
        local_listing(query.clone(), move || {
            let files = L::files(&dir)?;
            // One unreadable file is reported; the listing goes on.
            Ok(files
                .into_iter()
                .map(|(path, labels)| read_labelled_file(&path, &labels)))
        })
    }

    async fn get(&self, id: &str) -> Result<RawEmail, MailError> {
        let dir = self.dir.clone();
        let id = id.to_owned();
        run_blocking(move || find_in_files(L::files(&dir)?, &id)).await
    }
}

/// Reads one message file, refusing files over `MAX_MESSAGE_BYTES` so a stray huge
/// file cannot take the memory.
pub(super) fn read_message_file(path: &Path) -> Result<Vec<u8>, MailError> {
    let len = std::fs::metadata(path)
        .map_err(|source| io_error(path, source))?
        .len();
    if len > MAX_MESSAGE_BYTES as u64 {
        return Err(MailError::Malformed(format!(
            "{} is larger than {} MiB and was skipped",
            path.display(),
            MAX_MESSAGE_BYTES / (1024 * 1024)
        )));
    }
    std::fs::read(path).map_err(|source| io_error(path, source))
}

/// One message file as a source yields it (slimmed), with the labels its folder
/// gives it.
fn read_labelled_file(path: &Path, labels: &[String]) -> Result<RawEmail, MailError> {
    let bytes = slim(read_message_file(path)?);
    let extra: Vec<&str> = labels.iter().map(String::as_str).collect();
    Ok(raw_from_bytes(bytes, &extra))
}

/// The first file whose message id is `id`.
fn find_in_files(files: Vec<(PathBuf, Vec<String>)>, id: &str) -> Result<RawEmail, MailError> {
    for (path, labels) in files {
        let Ok(raw) = read_labelled_file(&path, &labels) else {
            continue;
        };
        if raw.id == id {
            return Ok(raw);
        }
    }
    Err(MailError::NotFound(id.to_owned()))
}

/// The listing of a local source: the query is compiled, once, `open` starts reading,
/// and every message read is deduplicated and filtered (`admit`). Errors of single
/// messages pass through; a query or `open` error is the listing's only item. It all
/// runs on a blocking thread (`blocking_stream`).
pub(super) fn local_listing<O, I>(
    query: MailQuery,
    open: O,
) -> BoxStream<'static, Result<Listed, MailError>>
where
    O: FnOnce() -> Result<I, MailError> + Send + 'static,
    I: Iterator<Item = Result<RawEmail, MailError>> + Send + 'static,
{
    blocking_stream(move || {
        let started = query.compile().and_then(|query| Ok((query, open()?)));
        let (query, messages) = match started {
            Ok(started) => started,
            Err(e) => {
                return Box::new(std::iter::once(Some(Err(e))))
                    as Box<dyn Iterator<Item = _> + Send>;
            }
        };
        let mut seen = HashSet::new();
        Box::new(messages.map(move |item| match item {
            Ok(raw) => admit(raw, &mut seen, &query).map(Ok),
            Err(e) => Some(Err(e)),
        }))
    })
}

/// What every local source does with a message it has read: the first copy of an id
/// wins (Takeout repeats a message that sits in several places), then the query
/// filters on headers. `None` means the message is not listed.
fn admit(raw: RawEmail, seen: &mut HashSet<u128>, query: &CompiledQuery) -> Option<Listed> {
    if !seen.insert(super::id_key(&raw.id)) {
        return None;
    }
    if !query.is_unfiltered() {
        let info = HeaderInfo::from_bytes(&raw.bytes, &raw.labels, query.needs_body());
        if !query.matches(&info) {
            return None;
        }
    }
    Some(Listed {
        id: raw.id.clone(),
        thread_id: raw.thread_id.clone(),
        raw: Some(raw),
    })
}

/// Runs blocking file work off the async threads when inside tokio.
pub(super) async fn run_blocking<T, F>(f: F) -> Result<T, MailError>
where
    F: FnOnce() -> Result<T, MailError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(_) => tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| MailError::Upstream(format!("mail reader task failed: {e}")))?,
        Err(_) => f(),
    }
}

/// Turns a blocking iterator (file reads) into a stream without blocking the async
/// runtime: inside tokio it runs on a blocking thread and feeds a small bounded
/// channel, so at most a few messages are in memory and reading stops when the
/// consumer drops the stream (a request that ended), even while nothing it reads is
/// listed (`None`: read, not listed). Outside a tokio runtime it reads inline.
fn blocking_stream<I, F>(make: F) -> BoxStream<'static, Result<Listed, MailError>>
where
    F: FnOnce() -> I + Send + 'static,
    I: Iterator<Item = Option<Result<Listed, MailError>>> + Send + 'static,
{
    use futures::StreamExt;

    enum State<F, I: Iterator<Item = Option<Result<Listed, MailError>>>> {
        Start(F),
        Channel(
            tokio::sync::mpsc::Receiver<Vec<Result<Listed, MailError>>>,
            std::vec::IntoIter<Result<Listed, MailError>>,
        ),
        Inline(Box<std::iter::Flatten<I>>),
    }

    // Messages cross the channel in batches: one wake-up per message costs more than
    // parsing a small one. A batch closes at BATCH_MESSAGES or BATCH_BYTES, so memory
    // stays bounded however large the messages are.
    const CHANNEL_CAPACITY: usize = 8;
    const BATCH_MESSAGES: usize = 64;
    const BATCH_BYTES: usize = 2 * 1024 * 1024;

    futures::stream::unfold(State::<F, I>::Start(make), |state| async move {
        let mut state = state;
        loop {
            match state {
                State::Start(make) => {
                    if tokio::runtime::Handle::try_current().is_ok() {
                        let (tx, rx) = tokio::sync::mpsc::channel(CHANNEL_CAPACITY);
                        tokio::task::spawn_blocking(move || {
                            let mut batch = Vec::with_capacity(BATCH_MESSAGES);
                            let mut bytes = 0;
                            for item in make() {
                                if tx.is_closed() {
                                    return;
                                }
                                let Some(item) = item else {
                                    continue;
                                };
                                bytes += match &item {
                                    Ok(Listed { raw: Some(raw), .. }) => raw.bytes.len(),
                                    _ => 0,
                                };
                                batch.push(item);
                                if batch.len() >= BATCH_MESSAGES || bytes >= BATCH_BYTES {
                                    let full = std::mem::replace(
                                        &mut batch,
                                        Vec::with_capacity(BATCH_MESSAGES),
                                    );
                                    bytes = 0;
                                    if tx.blocking_send(full).is_err() {
                                        return;
                                    }
                                }
                            }
                            if !batch.is_empty() {
                                let _ = tx.blocking_send(batch);
                            }
                        });
                        state = State::Channel(rx, Vec::new().into_iter());
                    } else {
                        state = State::Inline(Box::new(make().flatten()));
                    }
                }
                State::Channel(mut rx, mut pending) => {
                    if let Some(item) = pending.next() {
                        return Some((item, State::Channel(rx, pending)));
                    }
                    match rx.recv().await {
                        Some(batch) => state = State::Channel(rx, batch.into_iter()),
                        None => return None,
                    }
                }
                State::Inline(mut iter) => {
                    return iter.next().map(|item| (item, State::Inline(iter)));
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use futures::StreamExt;

    use super::*;

    fn raw(id: &str, subject: &str) -> RawEmail {
        let text = format!("Message-ID: <{id}>\r\nSubject: {subject}\r\n\r\nbody");
        raw_from_bytes(text.into_bytes(), &[])
    }

    /// A client's message with an attachment of `megabytes` MB, base64 as mail has it.
    pub(crate) fn with_attachment(megabytes: usize) -> Vec<u8> {
        let mut m = String::from(
            "From: Jane <jane@acme.com>\r\nTo: alex@firm.com\r\nSubject: The signed scan\r\n\
             Date: Mon, 02 Nov 2026 09:00:00 -0500\r\nMessage-ID: <big@acme.com>\r\n\
             MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nAlex, the signed agreement is attached.\r\n\
             --b\r\nContent-Type: application/pdf; name=\"scan.pdf\"\r\n\
             Content-Disposition: attachment; filename=\"scan.pdf\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n",
        );
        let line =
            "JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PC9UeXBlL0NhdGFsb2c+PgplbmRvYmoKJcfsj6IKMSAw\r\n";
        for _ in 0..megabytes * 1024 * 1024 / 57 {
            m.push_str(line);
        }
        m.push_str("--b--\r\n");
        m.into_bytes()
    }

    #[test]
    fn an_attachments_body_is_dropped_and_the_message_reads_the_same() {
        let full = with_attachment(3);
        assert!(full.len() > 3 * 1024 * 1024);
        let kept = slim(full.clone());
        assert!(
            kept.len() < KEEP_WHOLE_BYTES + 4096,
            "{} bytes kept",
            kept.len()
        );
        let parse = |bytes: Vec<u8>| {
            crate::mail::parse::parse_email(&RawEmail {
                id: "big".into(),
                bytes,
                ..RawEmail::default()
            })
            .expect("parses")
        };
        let (a, b) = (parse(full), parse(kept));
        assert_eq!(a.attachments, 1);
        assert_eq!(b.attachments, 1);
        assert_eq!(a.new_text, b.new_text);
        assert_eq!((a.subject, a.from, a.date), (b.subject, b.from, b.date));
        // Small messages, and text however long, are kept whole; of a line only its
        // first MAX_LINE_BYTES, still ending the line.
        let small = with_attachment(0);
        assert_eq!(slim(small.clone()), small);
        let text = format!("{}\n", "word ".repeat(20))
            .repeat(20_000)
            .into_bytes();
        assert_eq!(slim(text.clone()), text);
        let line = format!("{}\nnext\n", "word ".repeat(400_000)).into_bytes();
        let cut = slim(line);
        assert_eq!(cut.len(), MAX_LINE_BYTES + "\nnext\n".len());
        assert!(
            cut.ends_with(b"w\nnext\n"),
            "the line ends where it was cut"
        );
    }

    fn query(text: &str) -> MailQuery {
        MailQuery {
            query: Some(text.to_owned()),
            ..MailQuery::default()
        }
    }

    /// Ids listed, or error messages, in order (read inline: no runtime here).
    fn ids(stream: BoxStream<'static, Result<Listed, MailError>>) -> Vec<Result<String, String>> {
        let items = stream.map(|item| item.map(|l| l.id).map_err(|e| e.to_string()));
        futures::executor::block_on(items.collect())
    }

    #[test]
    fn a_listing_keeps_the_first_copy_filters_and_passes_single_errors_on() {
        let messages = vec![
            Ok(raw("a@x", "keep")),
            Err(MailError::Malformed("unreadable".into())),
            Ok(raw("a@x", "keep, a second copy")),
            Ok(raw("b@x", "drop")),
            Ok(raw("c@x", "keep")),
        ];
        let listed = ids(local_listing(query("subject:keep"), move || {
            Ok(messages.into_iter())
        }));
        assert_eq!(
            listed,
            [
                Ok("a@x".to_owned()),
                Err("the message could not be parsed: unreadable".to_owned()),
                Ok("c@x".to_owned()),
            ]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reading_stops_when_the_listing_is_dropped_even_while_nothing_matches() {
        use std::sync::atomic::AtomicUsize;
        let read = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&read);
        // An endless mailbox in which nothing matches the query.
        let mut listing = local_listing(query("subject:nothing-has-this"), move || {
            Ok((0..).map(move |n| {
                counter.fetch_add(1, Ordering::SeqCst);
                Ok(raw(&format!("m{n}@x"), "ordinary"))
            }))
        });
        let first = tokio::time::timeout(std::time::Duration::from_millis(100), listing.next());
        assert!(first.await.is_err(), "nothing is listed");
        drop(listing);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let after_drop = read.load(Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(after_drop > 0);
        assert_eq!(read.load(Ordering::SeqCst), after_drop, "still reading");
    }

    #[test]
    fn a_bad_query_or_open_is_the_only_item_and_a_bad_query_opens_nothing() {
        let opened = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&opened);
        let listed = ids(local_listing(query("older_than:1y"), move || {
            flag.store(true, Ordering::SeqCst);
            Ok(std::iter::empty())
        }));
        assert!(matches!(listed.as_slice(), [Err(e)] if e.contains("older_than:")));
        assert!(!opened.load(Ordering::SeqCst));

        let listed = ids(local_listing(MailQuery::default(), || {
            Err::<std::iter::Empty<_>, _>(MailError::NotFound("x".into()))
        }));
        assert!(matches!(listed.as_slice(), [Err(_)]));
    }
}
