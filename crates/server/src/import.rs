//! `polyclinic import FILE.jsonl`: a clinic's history (patients and
//! appointments, one JSON object per line) loaded through the store's bulk
//! path ([`polyclinic_store::import`]; the format is in docs/import.md).
//!
//! A reader thread parses the file into batches while the store writes the
//! previous one; each batch is one transaction. The import stops at the
//! first refused line: the batches before it stay committed, nothing of its
//! own batch is written, and running the file again skips every line already
//! imported (by the clinic's ids), so a fixed file simply runs again.
//! Progress goes to stderr: a bar when stderr is a terminal, plain lines
//! when asked (`--progress`) and it is not, nothing otherwise.

use polyclinic_store::Store;
use polyclinic_store::import::{self, Counts, ImportError, Line, LineError};
use serde::Serialize;
use std::io::{BufRead, IsTerminal};
use std::path::Path;
use std::time::{Duration, Instant};

/// How the import shows its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A bar on stderr when it is a terminal; nothing otherwise.
    Auto,
    /// A bar on a terminal, else a plain line every few seconds.
    Always,
    /// Nothing.
    Never,
}

/// Settings of one import.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Lines per transaction.
    pub batch: usize,
    pub progress: Progress,
}

impl Default for Options {
    fn default() -> Self {
        Options { batch: import::DEFAULT_BATCH, progress: Progress::Auto }
    }
}

/// What an import did.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Lines read (blank lines included).
    pub lines: u64,
    /// Transactions committed.
    pub batches: u64,
    pub patients: Tally,
    pub appointments: Tally,
    pub seconds: f64,
}

/// Rows written and lines skipped (already imported) of one kind.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Tally {
    pub imported: u64,
    pub skipped: u64,
}

impl Summary {
    fn of(counts: Counts, lines: u64, batches: u64, started: Instant) -> Summary {
        Summary {
            lines,
            batches,
            patients: Tally { imported: counts.patients, skipped: counts.patients_skipped },
            appointments: Tally { imported: counts.appointments, skipped: counts.appointments_skipped },
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

/// Why an import stopped, with what was committed before.
#[derive(Debug)]
pub struct Failure {
    pub why: Why,
    pub committed: Summary,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.committed;
        write!(f, "{}; nothing of its batch was written", self.why)?;
        if c.batches > 0 {
            write!(
                f,
                "; the {} batch(es) before it committed ({} patients, {} appointments): fix the file and run it again, lines already imported are skipped",
                c.batches, c.patients.imported, c.appointments.imported
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}

/// The cause of a [`Failure`].
#[derive(Debug)]
pub enum Why {
    Line(LineError),
    Read(std::io::Error),
    Store(polyclinic_store::StoreError),
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Line(l) => write!(f, "{l}"),
            Why::Read(e) => write!(f, "reading the file: {e}"),
            Why::Store(e) => write!(f, "{e}"),
        }
    }
}

impl Failure {
    /// The refused line's number, when a line was refused.
    pub fn line(&self) -> Option<u64> {
        match &self.why {
            Why::Line(l) => Some(l.line),
            _ => None,
        }
    }
}

/// What the reader thread hands over: a batch and the bytes read so far.
enum Parsed {
    Batch { lines: Vec<Line>, read_lines: u64, bytes: u64 },
    Refused(Why),
}

/// Imports `path` into `store`.
pub async fn import_file(store: &Store, path: &Path, opts: Options) -> anyhow::Result<Result<Summary, Failure>> {
    let file = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("opening {}: {e}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).ok();
    Ok(import_reader(store, std::io::BufReader::with_capacity(1 << 20, file), size, opts).await)
}

/// Imports JSON Lines from `reader` (`size`: its length in bytes, for the
/// progress bar).
pub async fn import_reader<R: BufRead + Send + 'static>(
    store: &Store,
    reader: R,
    size: Option<u64>,
    opts: Options,
) -> Result<Summary, Failure> {
    let started = Instant::now();
    let batch = opts.batch.clamp(1, import::MAX_BATCH);
    // Two batches parsed ahead at most: memory stays flat however long the file.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Parsed>(2);
    let reader_thread =
        match std::thread::Builder::new().name("import-reader".into()).spawn(move || read_batches(reader, batch, tx)) {
            Ok(thread) => thread,
            // The OS refused a thread: nothing was read or written.
            Err(e) => {
                return Err(Failure { why: Why::Read(e), committed: Summary::of(Counts::default(), 0, 0, started) });
            }
        };
    let mut shown = Shown::new(opts.progress, size);
    let mut counts = Counts::default();
    let (mut batches, mut lines_done) = (0u64, 0u64);
    let now = jiff::Timestamp::now();
    let mut failed = None;
    // Patients and appointments imported when the statistics were refreshed.
    let mut analysed = (0u64, 0u64);
    while let Some(parsed) = rx.recv().await {
        match parsed {
            Parsed::Batch { lines, read_lines, bytes } => match import::import_batch(store, lines, now).await {
                Ok(c) => {
                    counts.add(c);
                    batches += 1;
                    lines_done = read_lines;
                    shown.update(bytes, lines_done, &counts);
                    // Each time a table has doubled since the last look.
                    let grew = |now: u64, then: u64| now > 0 && now >= then.saturating_mul(2).max(1);
                    if grew(counts.patients, analysed.0) || grew(counts.appointments, analysed.1) {
                        analysed = (counts.patients, counts.appointments);
                        if let Err(e) = import::refresh_statistics(store).await {
                            failed = Some(Why::Store(e));
                            break;
                        }
                    }
                }
                Err(ImportError::Line(l)) => {
                    failed = Some(Why::Line(l));
                    break;
                }
                Err(ImportError::Store(e)) => {
                    failed = Some(Why::Store(e));
                    break;
                }
            },
            Parsed::Refused(why) => {
                failed = Some(why);
                break;
            }
        }
    }
    // Dropping the receiver ends the reader at its next send.
    drop(rx);
    let _ = tokio::task::spawn_blocking(move || reader_thread.join()).await;
    shown.finish();
    let summary = Summary::of(counts, lines_done, batches, started);
    match failed {
        None => Ok(summary),
        Some(why) => Err(Failure { why, committed: summary }),
    }
}

/// The reader thread: parses `reader` into batches of `batch` records.
fn read_batches<R: BufRead>(mut reader: R, batch: usize, tx: tokio::sync::mpsc::Sender<Parsed>) {
    let mut lines = Vec::with_capacity(batch);
    let (mut number, mut bytes) = (0u64, 0u64);
    let mut text = String::new();
    loop {
        text.clear();
        // At most one byte past the limit is read into memory per line.
        let read = std::io::Read::take(reader.by_ref(), import::MAX_LINE_BYTES as u64 + 1).read_line(&mut text);
        match read {
            Ok(0) => break,
            Ok(n) => {
                number += 1;
                bytes += n as u64;
                if n > import::MAX_LINE_BYTES && !text.ends_with('\n') {
                    let message = format!("longer than {} bytes", import::MAX_LINE_BYTES);
                    let _ = tx.blocking_send(Parsed::Refused(Why::Line(LineError { line: number, message })));
                    return;
                }
                match import::parse(number, &text) {
                    Ok(Some(line)) => lines.push(line),
                    Ok(None) => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Parsed::Refused(Why::Line(e)));
                        return;
                    }
                }
                if lines.len() >= batch {
                    let full = std::mem::replace(&mut lines, Vec::with_capacity(batch));
                    if tx.blocking_send(Parsed::Batch { lines: full, read_lines: number, bytes }).is_err() {
                        return;
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                let message = "is not UTF-8 text".to_owned();
                let _ = tx.blocking_send(Parsed::Refused(Why::Line(LineError { line: number + 1, message })));
                return;
            }
            Err(e) => {
                let _ = tx.blocking_send(Parsed::Refused(Why::Read(e)));
                return;
            }
        }
    }
    let _ = tx.blocking_send(Parsed::Batch { lines, read_lines: number, bytes });
}

/// The progress shown on stderr.
struct Shown {
    bar: Option<indicatif::ProgressBar>,
    /// Plain lines instead of a bar: when the last was printed.
    plain: Option<Instant>,
    size: Option<u64>,
}

impl Shown {
    fn new(progress: Progress, size: Option<u64>) -> Shown {
        let terminal = std::io::stderr().is_terminal();
        let bar = (terminal && progress != Progress::Never).then(|| {
            let bar = match size {
                Some(n) => indicatif::ProgressBar::new(n),
                None => indicatif::ProgressBar::new_spinner(),
            };
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({eta}) {msg}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        let plain = (!terminal && progress == Progress::Always).then(Instant::now);
        Shown { bar, plain, size }
    }

    fn update(&mut self, bytes: u64, lines: u64, counts: &Counts) {
        let what = format!("{lines} lines: {} patients, {} appointments", counts.patients, counts.appointments);
        if let Some(bar) = &self.bar {
            bar.set_position(bytes);
            bar.set_message(what);
        } else if let Some(last) = &mut self.plain
            && last.elapsed() >= Duration::from_secs(2)
        {
            *last = Instant::now();
            let percent = self.size.filter(|s| *s > 0).map(|s| format!(" ({}%)", bytes * 100 / s)).unwrap_or_default();
            eprintln!("import: {what}{percent}");
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}
