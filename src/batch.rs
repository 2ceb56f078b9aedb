//! Streaming batch inference over CSV files of any size (`fhe-ml batch`): rows are read,
//! encrypted and sent in chunks, with a bounded number of requests in flight and a bounded
//! reorder window, so memory stays flat whatever the file's size; predictions are written in
//! input order. A checkpoint beside the output (`{output}.checkpoint`) records how far the
//! output is complete; the same job run again after being killed resumes there, and its
//! finished output is byte-identical to an uninterrupted run's (no row scored twice in the
//! output, none missing).
//!
//! Requests that fail for a reason that can heal (a replica restarting, a load balancer with
//! no backend, a draining replica, a rate limit) are retried with exponential backoff; a
//! service that no longer holds the client's evaluation key (evicted, or the key store lost
//! it) gets it again, once per failed request, automatically.
//!
//! The same engine scores with a model file's clear twin (`fhe-ml batch --model-file`): no
//! server, no encryption, the exact integers decryption yields for leveled models, in the
//! same output format. It is the reference the cluster test compares against.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::data::{detect_delimiter, HeaderMatch, Schema};
use crate::error::{Error, Result};
use crate::fhe::wire::{self, Kind};
use crate::fhe::OutputMode;
use crate::program::decode::{Decoder, Prediction};
use crate::protocol::ClientSpec;
use crate::remote::{Failure, RemoteServer};
use crate::service::{hex, ModelBundle};

/// How a batch job runs.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Rows per request; `None`: 256 for leveled models, 16 for models that bootstrap (so
    /// the work spreads over replicas).
    pub chunk_rows: Option<usize>,
    /// Requests in flight at once (and worker threads encrypting); the reorder window is
    /// twice this many chunks.
    pub in_flight: usize,
    /// Retries of one request after failures that can heal, with backoff from 0.2 s doubling
    /// to 5 s (`Retry-After` when the service gives one).
    pub max_retries: u32,
    /// The input's delimiter; detected from its first line when `None`.
    pub delimiter: Option<u8>,
    /// Start afresh over an existing output that has no checkpoint (a finished job's).
    pub overwrite: bool,
    /// Show a progress bar (rows, rows/s, ETA) on stderr when it is a terminal.
    pub progress: bool,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self {
            chunk_rows: None,
            in_flight: 4,
            max_retries: 10,
            delimiter: None,
            overwrite: false,
            progress: false,
        }
    }
}

/// What a batch job did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchReport {
    /// Rows in the finished output.
    pub rows: u64,
    /// Rows already in the output when this run started (resumed from its checkpoint).
    pub resumed_from: u64,
    /// Prediction requests sent (retries included), by every run of this job (the runs
    /// before a resume count up to their last checkpoint).
    pub requests: u64,
    /// Requests sent again after a failure that could heal (every run, as `requests`).
    pub retried: u64,
    /// Evaluation key uploads, the first of each run included (every run, as `requests`).
    pub key_uploads: u64,
    /// Wall-clock seconds of this run.
    pub seconds: f64,
    /// Rows this run scored per second.
    pub rows_per_s: f64,
}

/// One scored row: the prediction and, in top-K mode, the ranked class indices.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The class (best first in label and top-K modes) or the value.
    pub prediction: Prediction,
    /// Class indices, best first (top-K mode only).
    pub ranked: Option<Vec<usize>>,
}

/// The output's header line: `row,prediction`, and `,top_K` in top-K mode.
pub fn header(output: OutputMode) -> String {
    match output {
        OutputMode::TopK(k) => format!("row,prediction,top_{k}"),
        _ => "row,prediction".into(),
    }
}

/// One output line (no newline): the row's 0-based index among the input's data rows, the
/// predicted label or value, and in top-K mode the ranked labels, space-separated.
///
/// # Errors
/// `Error::Input` for a class index the decoder does not know.
pub fn format_line(row: u64, scored: &Scored, decoder: &Decoder) -> Result<String> {
    let show = |p: &Prediction| match p {
        Prediction::Class { label, .. } => label.to_string(),
        Prediction::Value(v) => v.to_string(),
    };
    let mut line = format!("{row},{}", show(&scored.prediction));
    if let Some(ranked) = &scored.ranked {
        let labels = ranked
            .iter()
            .map(|&c| Ok(show(&decoder.decode_label(c)?)))
            .collect::<Result<Vec<_>>>()?;
        line.push(',');
        line.push_str(&labels.join(" "));
    }
    Ok(line)
}

/// Scores chunks of raw feature rows (`n_features` values each).
trait Scorer: Sync {
    fn score(&self, rows: &[Vec<f64>]) -> Result<Vec<Scored>>;

    /// Requests sent, retried, and key uploads so far.
    fn counters(&self) -> [u64; 3] {
        [0; 3]
    }
}

/// The clear twin of a model file: quantize, run the integer program, decode.
struct ClearScorer<'a> {
    bundle: &'a ModelBundle,
}

impl Scorer for ClearScorer<'_> {
    fn score(&self, rows: &[Vec<f64>]) -> Result<Vec<Scored>> {
        let spec = &self.bundle.client_spec;
        let program = &self.bundle.server_model.program;
        rows.iter()
            .map(|row| {
                crate::data::check_row(row, spec.quantizer.n_features())?;
                let outputs = program.simulate(&spec.quantizer.quantize(row).values)?;
                if program.head().is_none() {
                    return Ok(Scored {
                        prediction: spec.decoder.decode(&outputs)?,
                        ranked: None,
                    });
                }
                let ranked: Vec<usize> = outputs.iter().map(|&c| c as usize).collect();
                let best = *ranked.first().ok_or_else(|| Error::shape("labels", 1, 0))?;
                Ok(Scored {
                    prediction: spec.decoder.decode_label(best)?,
                    ranked: matches!(spec.output, OutputMode::TopK(_)).then_some(ranked),
                })
            })
            .collect()
    }
}

/// Encrypts, sends with retries, decrypts.
struct RemoteScorer<'a> {
    remote: &'a RemoteServer,
    model: &'a str,
    client: &'a Client,
    /// The serialized evaluation key, for models that bootstrap.
    key: Option<Vec<u8>>,
    /// Bumped by each upload: workers that saw `UnknownKey` under the same generation share
    /// one upload.
    key_generation: Mutex<u64>,
    max_retries: u32,
    requests: AtomicU64,
    retried: AtomicU64,
    uploads: AtomicU64,
}

/// Backoff before retry `attempt` (0-based): 0.2 s doubling, at most 5 s, or what
/// `Retry-After` asks (at most 60 s).
fn backoff(attempt: u32, retry_after_s: Option<u64>) -> Duration {
    match retry_after_s {
        Some(s) => Duration::from_secs(s.min(60)),
        None => Duration::from_millis((200u64 << attempt.min(5)).min(5000)),
    }
}

/// Rows per request unless asked: 16 for models that bootstrap (so the work spreads over
/// replicas), 256 for leveled ones.
fn default_chunk(spec: &ClientSpec) -> usize {
    if spec.needs_evaluation_key {
        16
    } else {
        256
    }
}

impl<'a> RemoteScorer<'a> {
    /// A scorer for `client` on `model`, its evaluation key (for models that bootstrap) made
    /// and uploaded.
    fn start(
        remote: &'a RemoteServer,
        model: &'a str,
        client: &'a Client,
        options: &BatchOptions,
    ) -> Result<Self> {
        let key = if client.spec().needs_evaluation_key {
            Some(client.evaluation_key()?.to_bytes()?)
        } else {
            None
        };
        let scorer = RemoteScorer {
            remote,
            model,
            client,
            key,
            key_generation: Mutex::new(0),
            max_retries: options.max_retries,
            requests: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            uploads: AtomicU64::new(0),
        };
        scorer.upload()?;
        Ok(scorer)
    }
}

impl RemoteScorer<'_> {
    /// Uploads the key, retrying failures that can heal.
    fn upload(&self) -> Result<()> {
        let Some(key) = &self.key else {
            return Ok(());
        };
        let mut attempt = 0;
        loop {
            match self.remote.upload_key_bytes(key) {
                Ok(_) => {
                    self.uploads.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Err(f) if f.transient() && attempt < self.max_retries => {
                    std::thread::sleep(backoff(attempt, f.retry_after_s));
                    attempt += 1;
                }
                Err(f) => return Err(f.error),
            }
        }
    }

    /// Uploads the key again unless another worker already did since `seen`.
    fn reupload(&self, seen: u64) -> Result<()> {
        let mut generation = self
            .key_generation
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if *generation == seen {
            self.upload()?;
            *generation += 1;
        }
        Ok(())
    }

    fn send(&self, blob: &[u8], rows: usize) -> Result<Vec<crate::protocol::EncryptedOutput>> {
        let mut attempt = 0;
        let mut reuploaded = false;
        loop {
            let generation = *self
                .key_generation
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            self.requests.fetch_add(1, Ordering::Relaxed);
            let failure: Failure = match self.remote.predict_batch_blob(self.model, blob, rows) {
                Ok(outputs) => return Ok(outputs),
                Err(f) => f,
            };
            if failure.unknown_key() && self.key.is_some() && !reuploaded {
                reuploaded = true;
                self.retried.fetch_add(1, Ordering::Relaxed);
                self.reupload(generation)?;
                continue;
            }
            if failure.transient() && attempt < self.max_retries {
                self.retried.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(backoff(attempt, failure.retry_after_s));
                attempt += 1;
                continue;
            }
            return Err(failure.error);
        }
    }
}

impl Scorer for RemoteScorer<'_> {
    fn counters(&self) -> [u64; 3] {
        [&self.requests, &self.retried, &self.uploads].map(|c| c.load(Ordering::Relaxed))
    }

    fn score(&self, rows: &[Vec<f64>]) -> Result<Vec<Scored>> {
        let inputs = rows
            .iter()
            .map(|r| self.client.encrypt(r))
            .collect::<Result<Vec<_>>>()?;
        let blob = wire::seal(Kind::InputBatch, &inputs)?;
        let top = matches!(self.client.spec().output, OutputMode::TopK(_));
        self.send(&blob, rows.len())?
            .iter()
            .map(|out| {
                Ok(Scored {
                    prediction: self.client.decrypt(out)?,
                    ranked: if top {
                        Some(self.client.decrypt_labels(out)?)
                    } else {
                        None
                    },
                })
            })
            .collect()
    }
}

/// A chunk of consecutive rows as read: the rows, and where the input stands after them.
struct ReadChunk<P> {
    rows: Vec<Vec<f64>>,
    end: P,
}

/// Runs `scorer` over `chunks` (read lazily, at most `window` chunks ahead of the output),
/// `in_flight` at once, and hands each chunk's results to `sink` in input order.
fn pipeline<P: Send>(
    scorer: &dyn Scorer,
    mut chunks: impl Iterator<Item = Result<ReadChunk<P>>>,
    in_flight: usize,
    mut sink: impl FnMut(Vec<Scored>, P) -> Result<()>,
) -> Result<()> {
    let in_flight = in_flight.max(1);
    let window = 2 * in_flight as u64;
    let (work_tx, work_rx) = mpsc::sync_channel::<(u64, Vec<Vec<f64>>)>(in_flight);
    let work_rx = Mutex::new(work_rx);
    let (done_tx, done_rx) = mpsc::channel::<(u64, Result<Vec<Scored>>)>();
    std::thread::scope(|scope| {
        for _ in 0..in_flight {
            let done_tx = done_tx.clone();
            let work_rx = &work_rx;
            scope.spawn(move || loop {
                let job = work_rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                let Ok((index, rows)) = job else {
                    return;
                };
                if done_tx.send((index, scorer.score(&rows))).is_err() {
                    return;
                }
            });
        }
        drop(done_tx);
        // Moved in: returning (on an error too) closes the queue, so the workers stop.
        let work_tx = work_tx;
        let (mut dispatched, mut written) = (0u64, 0u64);
        let mut ends: HashMap<u64, P> = HashMap::new();
        let mut pending: BTreeMap<u64, Result<Vec<Scored>>> = BTreeMap::new();
        let mut exhausted = false;
        // A row that cannot be read ends the input: the chunks before it are finished first.
        let mut read_error = None;
        loop {
            while !exhausted && dispatched < written + window {
                match chunks.next() {
                    None => exhausted = true,
                    Some(Err(e)) => {
                        read_error = Some(e);
                        exhausted = true;
                    }
                    Some(Ok(chunk)) => {
                        ends.insert(dispatched, chunk.end);
                        work_tx
                            .send((dispatched, chunk.rows))
                            .map_err(|_| Error::Other("the batch workers stopped".into()))?;
                        dispatched += 1;
                    }
                }
            }
            if written == dispatched {
                return read_error.map_or(Ok(()), Err);
            }
            let (index, result) = done_rx
                .recv()
                .map_err(|_| Error::Other("the batch workers stopped".into()))?;
            pending.insert(index, result);
            while let Some(result) = pending.remove(&written) {
                let end = ends
                    .remove(&written)
                    .ok_or_else(|| Error::Other("a chunk was scored twice".into()))?;
                sink(result?, end)?;
                written += 1;
            }
        }
    })
}

/// Where a job stands: written beside the output after each checkpointed chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Checkpoint {
    /// Format of this file.
    version: u32,
    /// The model's id, hex: a resumed job must score with the same model.
    model_id: String,
    /// The input's size and a digest of its first 64 KiB: a resumed job must read the same
    /// file.
    input_bytes: u64,
    input_digest: String,
    /// Rows complete in the output, and the output's length then.
    rows: u64,
    output_bytes: u64,
    /// Where the input's next row starts (the csv reader's position).
    input_byte: u64,
    input_line: u64,
    input_record: u64,
    /// Requests sent, retried, and key uploads by the runs of this job so far.
    #[serde(default)]
    counters: [u64; 3],
}

const CHECKPOINT_VERSION: u32 = 1;

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `{output}.checkpoint`.
pub fn checkpoint_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_os_string();
    name.push(".checkpoint");
    PathBuf::from(name)
}

fn fingerprint(input: &Path) -> Result<(u64, String)> {
    use std::io::Read;
    let file = File::open(input).map_err(io_err(input))?;
    let len = file.metadata().map_err(io_err(input))?.len();
    let mut head = Vec::new();
    file.take(64 << 10)
        .read_to_end(&mut head)
        .map_err(io_err(input))?;
    Ok((len, blake3::hash(&head).to_hex()[..32].to_string()))
}

fn write_checkpoint(path: &Path, checkpoint: &Checkpoint) -> Result<()> {
    let tmp = path.with_extension("checkpoint.tmp");
    let text = serde_json::to_vec_pretty(checkpoint).map_err(|e| Error::Other(e.to_string()))?;
    let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
    file.write_all(&text).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// The input's data rows as feature rows, in chunks of `chunk` rows, from `start`.
struct CsvChunks {
    path: PathBuf,
    reader: csv::Reader<File>,
    matched: HeaderMatch,
    schema: Schema,
    decimal_comma: bool,
    chunk: usize,
    record: csv::StringRecord,
    done: bool,
    /// A bad row's error, returned after the rows read before it.
    failed: Option<Error>,
}

impl CsvChunks {
    fn open(
        path: &Path,
        schema: &Schema,
        delimiter: Option<u8>,
        chunk: usize,
        start: Option<csv::Position>,
    ) -> Result<Self> {
        use std::io::Read;
        let csv_err = |message: String| Error::Csv {
            path: path.to_path_buf(),
            message,
        };
        let delimiter = match delimiter {
            Some(d) => d,
            None => {
                let mut head = Vec::new();
                File::open(path)
                    .map_err(io_err(path))?
                    .take(64 << 10)
                    .read_to_end(&mut head)
                    .map_err(io_err(path))?;
                let first_line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
                detect_delimiter(first_line)
            }
        };
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .from_path(path)
            .map_err(|e| csv_err(e.to_string()))?;
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| csv_err(e.to_string()))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        let matched = schema
            .match_header(&header)
            .map_err(|e| csv_err(e.to_string()))?;
        if let Some(position) = start {
            reader.seek(position).map_err(|e| csv_err(e.to_string()))?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            matched,
            schema: schema.clone(),
            decimal_comma: delimiter == b';' || delimiter == b'\t',
            chunk: chunk.max(1),
            record: csv::StringRecord::new(),
            done: false,
            failed: None,
        })
    }

    fn ignored(&self) -> &[String] {
        &self.matched.ignored
    }

    /// Where the next row starts.
    fn position(&self) -> csv::Position {
        self.reader.position().clone()
    }
}

impl Iterator for CsvChunks {
    type Item = Result<ReadChunk<csv::Position>>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.failed.take() {
            return Some(Err(e));
        }
        if self.done {
            return None;
        }
        let mut rows = Vec::with_capacity(self.chunk);
        // Where the rows taken end: before a bad row, so a resumed job reads it again.
        let mut end = self.reader.position().clone();
        while rows.len() < self.chunk {
            let before = self.reader.position().clone();
            match self.reader.read_record(&mut self.record) {
                Ok(false) => {
                    self.done = true;
                    break;
                }
                Ok(true) => {
                    let line = self.record.position().map_or(0, |p| p.line());
                    let cells: Vec<&str> = self.record.iter().collect();
                    match self
                        .matched
                        .encode(&self.schema, &cells, self.decimal_comma)
                    {
                        Ok(row) => {
                            rows.push(row);
                            end = self.reader.position().clone();
                        }
                        Err(e) => {
                            end = before;
                            self.done = true;
                            self.failed = Some(Error::Csv {
                                path: self.path.clone(),
                                message: format!("line {line}: {e}"),
                            });
                            break;
                        }
                    }
                }
                Err(e) => {
                    end = before;
                    self.done = true;
                    self.failed = Some(Error::Csv {
                        path: self.path.clone(),
                        message: e.to_string(),
                    });
                    break;
                }
            }
        }
        if rows.is_empty() {
            return self.failed.take().map(Err);
        }
        Some(Ok(ReadChunk { rows, end }))
    }
}

/// Data rows of a CSV (for the progress bar's total).
fn count_rows(path: &Path, delimiter: Option<u8>) -> Option<u64> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter.unwrap_or(b','))
        .flexible(true)
        .from_path(path)
        .ok()?;
    let mut record = csv::ByteRecord::new();
    let mut n = 0;
    while reader.read_byte_record(&mut record).ok()? {
        n += 1;
    }
    Some(n)
}

/// Runs a job: resumes from the checkpoint, or starts (refusing to replace an output
/// without one unless `overwrite`).
fn run_job(
    spec: &ClientSpec,
    scorer: &dyn Scorer,
    input: &Path,
    output: &Path,
    options: &BatchOptions,
    default_chunk: usize,
) -> Result<BatchReport> {
    let start = Instant::now();
    let checkpoint_file = checkpoint_path(output);
    let (input_bytes, input_digest) = fingerprint(input)?;
    let model_id = hex(&spec.model_id);
    let previous: Option<Checkpoint> = match std::fs::read(&checkpoint_file) {
        Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| {
            Error::Input(format!(
                "{}: not a checkpoint ({e}); remove it to start afresh",
                checkpoint_file.display()
            ))
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(&checkpoint_file)(e)),
    };
    if let Some(c) = &previous {
        let same = c.version == CHECKPOINT_VERSION
            && c.model_id == model_id
            && c.input_bytes == input_bytes
            && c.input_digest == input_digest;
        if !same {
            return Err(Error::Input(format!(
                "{} belongs to another job (another model, input or version); remove it and {} to start afresh",
                checkpoint_file.display(),
                output.display()
            )));
        }
    } else if output.exists() && !options.overwrite {
        return Err(Error::Input(format!(
            "{} exists and has no checkpoint (a finished job?): remove it, or overwrite it (--overwrite)",
            output.display()
        )));
    }
    let chunk = options.chunk_rows.unwrap_or(default_chunk).max(1);
    let position = previous.as_ref().map(|c| {
        let mut p = csv::Position::new();
        p.set_byte(c.input_byte)
            .set_line(c.input_line)
            .set_record(c.input_record);
        p
    });
    let chunks = CsvChunks::open(input, &spec.schema, options.delimiter, chunk, position)?;
    let start_position = chunks.position();
    if !chunks.ignored().is_empty() && previous.is_none() {
        eprintln!(
            "note: ignoring column(s) the model does not read: {}",
            chunks.ignored().join(", ")
        );
    }
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(output)
        .map_err(io_err(output))?;
    let (mut rows, mut output_bytes) = match &previous {
        // Lines written after the last checkpoint go: they are scored again.
        Some(c) => (c.rows, c.output_bytes),
        None => {
            let line = header(spec.output) + "\n";
            file.set_len(0).map_err(io_err(output))?;
            file.write_all(line.as_bytes()).map_err(io_err(output))?;
            (0, line.len() as u64)
        }
    };
    file.set_len(output_bytes).map_err(io_err(output))?;
    file.seek(SeekFrom::Start(output_bytes))
        .map_err(io_err(output))?;
    let resumed_from = rows;
    let before = previous.as_ref().map_or([0; 3], |c| c.counters);
    let totals = |now: [u64; 3]| [0, 1, 2].map(|i| before[i] + now[i]);
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    let bar = if options.progress {
        let total = count_rows(input, options.delimiter).unwrap_or(0);
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} rows, {per_sec}, ETA {eta}",
            )
            .map_err(|e| Error::Other(e.to_string()))?,
        );
        bar.set_position(rows);
        bar.reset_eta();
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut last_checkpoint = Instant::now();
    // Where the input stands after the last row written (none written yet by this run).
    let mut last_end: Option<csv::Position> = None;
    let checkpoint = |rows: u64, output_bytes: u64, end: &csv::Position| Checkpoint {
        version: CHECKPOINT_VERSION,
        model_id: model_id.clone(),
        input_bytes,
        input_digest: input_digest.clone(),
        rows,
        output_bytes,
        input_byte: end.byte(),
        input_line: end.line(),
        input_record: end.record(),
        counters: totals(scorer.counters()),
    };
    if previous.is_none() {
        // From the start, an interrupted job has a checkpoint: its output is never mistaken
        // for a finished one.
        writer.flush().map_err(io_err(output))?;
        write_checkpoint(
            &checkpoint_file,
            &checkpoint(rows, output_bytes, &start_position),
        )?;
    }
    let decoder = &spec.decoder;
    let result = pipeline(scorer, chunks, options.in_flight, |scored, end| {
        let mut text = String::new();
        for (i, s) in scored.iter().enumerate() {
            text += &format_line(rows + i as u64, s, decoder)?;
            text.push('\n');
        }
        writer.write_all(text.as_bytes()).map_err(io_err(output))?;
        rows += scored.len() as u64;
        output_bytes += text.len() as u64;
        bar.set_position(rows);
        // At most a few checkpoints a second: each syncs the output first.
        if last_checkpoint.elapsed() >= Duration::from_millis(250) {
            writer.flush().map_err(io_err(output))?;
            writer.get_ref().sync_data().map_err(io_err(output))?;
            write_checkpoint(&checkpoint_file, &checkpoint(rows, output_bytes, &end))?;
            last_checkpoint = Instant::now();
        }
        last_end = Some(end);
        Ok(())
    });
    writer.flush().map_err(io_err(output))?;
    bar.finish_and_clear();
    if let Err(e) = result {
        // Keep what was written: a run after the cause is fixed resumes here.
        if let Some(end) = &last_end {
            writer.get_ref().sync_data().map_err(io_err(output))?;
            write_checkpoint(&checkpoint_file, &checkpoint(rows, output_bytes, end))?;
        }
        return Err(e);
    }
    writer.get_ref().sync_all().map_err(io_err(output))?;
    match std::fs::remove_file(&checkpoint_file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&checkpoint_file)(e)),
    }
    let seconds = start.elapsed().as_secs_f64();
    let [requests, retried, key_uploads] = totals(scorer.counters());
    Ok(BatchReport {
        rows,
        resumed_from,
        requests,
        retried,
        key_uploads,
        seconds,
        rows_per_s: (rows - resumed_from) as f64 / seconds.max(1e-9),
    })
}

/// Scores a CSV through a service: `input`'s header names the model's columns (any order;
/// others ignored), one line per data row; `output` gets `row,prediction` lines (see
/// [`format_line`]) in input order. Resumes from `{output}.checkpoint` when a previous run
/// was interrupted. For a model that bootstraps, a fresh evaluation key is made and uploaded
/// first (about 2 s and 29 MiB).
///
/// # Errors
/// As [`RemoteServer::client_spec`] for the model; `Error::Io` or `Error::Csv` for the files
/// (a bad cell names its line; the output stays complete up to the checkpoint);
/// `Error::Input` for a checkpoint of another job, or an existing output without one;
/// `Error::Remote` for a request that failed for good (after `max_retries` for failures
/// that can heal).
pub fn predict_csv(
    remote: &RemoteServer,
    model: &str,
    input: &Path,
    output: &Path,
    options: &BatchOptions,
) -> Result<BatchReport> {
    let spec = remote.client_spec(model)?;
    let client = Client::new(spec.clone())?;
    let scorer = RemoteScorer::start(remote, model, &client, options)?;
    let report = run_job(&spec, &scorer, input, output, options, default_chunk(&spec))?;
    if client.clipped_count() > 0 {
        eprintln!(
            "{} feature value(s) were outside the training range and clipped",
            client.clipped_count()
        );
    }
    Ok(report)
}

/// [`predict_csv`] with a model file's clear twin, locally: no service and no encryption;
/// the same output format, and for leveled models the very integers decryption yields.
///
/// # Errors
/// As [`predict_csv`] for the files and the checkpoint; `Error::Input` or `Error::Shape` for a
/// row the model cannot read.
pub fn predict_csv_clear(
    bundle: &ModelBundle,
    input: &Path,
    output: &Path,
    options: &BatchOptions,
) -> Result<BatchReport> {
    let scorer = ClearScorer { bundle };
    run_job(&bundle.client_spec, &scorer, input, output, options, 1024)
}

impl RemoteServer {
    /// Streams rows through the service: encrypts `rows` (each `n_features` raw values) in
    /// chunks with `client`, keeps `options.in_flight` requests in flight, retries failures
    /// that can heal, uploads `client`'s evaluation key when the service lacks it, and hands
    /// each row's prediction to `sink` with its 0-based index, in order. Memory stays bounded
    /// whatever the number of rows. `options` other than the chunk size, flight and retries
    /// do not apply (no files).
    ///
    /// # Errors
    /// The first error of `rows`, of encryption (`Error::Shape`, `Error::Input`), of a request
    /// that failed for good (`Error::Remote`), of decryption, or of `sink`; rows before it
    /// were delivered.
    pub fn predict_stream(
        &self,
        model: &str,
        client: &Client,
        rows: impl Iterator<Item = Result<Vec<f64>>>,
        options: &BatchOptions,
        mut sink: impl FnMut(u64, Scored) -> Result<()>,
    ) -> Result<BatchReport> {
        let start = Instant::now();
        let scorer = RemoteScorer::start(self, model, client, options)?;
        let chunk = options
            .chunk_rows
            .unwrap_or(default_chunk(client.spec()))
            .max(1);
        let mut rows = rows.peekable();
        let chunks = std::iter::from_fn(move || {
            let mut taken = Vec::with_capacity(chunk);
            while taken.len() < chunk {
                match rows.next()? {
                    Ok(row) => taken.push(row),
                    Err(e) => return Some(Err(e)),
                }
                if rows.peek().is_none() {
                    break;
                }
            }
            Some(Ok(ReadChunk {
                rows: taken,
                end: (),
            }))
        });
        let mut index = 0u64;
        pipeline(&scorer, chunks, options.in_flight, |scored, ()| {
            for s in scored {
                sink(index, s)?;
                index += 1;
            }
            Ok(())
        })?;
        let seconds = start.elapsed().as_secs_f64();
        Ok(BatchReport {
            rows: index,
            resumed_from: 0,
            requests: scorer.requests.load(Ordering::Relaxed),
            retried: scorer.retried.load(Ordering::Relaxed),
            key_uploads: scorer.uploads.load(Ordering::Relaxed),
            seconds,
            rows_per_s: index as f64 / seconds.max(1e-9),
        })
    }
}
