//! Evaluation reports: the JSON contract of `fhe-ml eval --json` and the table `demo` prints.

use serde::Serialize;

/// Plaintext / quantized / encrypted values of one metric over the test rows: accuracy as a
/// fraction in `0..=1` (not a percentage), or R² (1 is perfect; below 0 is worse than the mean).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Triple {
    /// The float model (linfa), on the scaled test rows.
    pub plain: f64,
    /// The integer program run in the clear (`simulate`, the clear twin): the cost of
    /// quantization alone.
    pub quantized: f64,
    /// Decrypted results of TFHE inference on the encrypted test rows.
    pub encrypted: f64,
}

/// Label agreement between pipelines (fraction of test rows with the same label, in `0..=1`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Agreement {
    /// Encrypted vs quantized (clear twin): below 1 only where bootstrapping noise changed a
    /// label; leveled models are exact.
    pub encrypted_vs_quantized: f64,
    /// Encrypted vs the float model: quantization and noise together.
    pub encrypted_vs_plain: f64,
    /// Quantized vs the float model: what quantization alone changes.
    pub quantized_vs_plain: f64,
}

/// Largest absolute difference between regression predictions over the test rows, in the
/// target's units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ErrorPair {
    /// `max |encrypted − quantized|`: 0 when decryption reproduces the clear twin exactly.
    pub encrypted_vs_quantized: f64,
    /// `max |encrypted − plain|`: mostly the quantization error.
    pub encrypted_vs_plain: f64,
}

/// Per-sample medians in milliseconds, one sample at a time (keygen: median of 5 for leveled
/// models).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Client key generation, ms: median of 5 `keygen` runs for leveled models; for
    /// bootstrapped ones, one secret key plus evaluation key generation.
    pub keygen: f64,
    /// Quantizing and encrypting one row on the client, ms.
    pub encrypt: f64,
    /// Inference on one encrypted row, ms (a full HTTP round trip with `eval --server`).
    pub infer: f64,
    /// Decrypting and decoding one result on the client, ms (the timing also covers the
    /// comparison with `simulate`).
    pub decrypt: f64,
    /// Median of the per-sample encrypt + infer + decrypt sums, ms (not the sum of the
    /// medians).
    pub total: f64,
}

/// Serialized sizes per sample, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Bytes {
    /// One row's serialized `EncryptedInput` (client to server), bytes.
    pub input_ciphertext: usize,
    /// One row's serialized `EncryptedOutput` (server to client), bytes.
    pub output_ciphertext: usize,
    /// The serialized evaluation key, bytes: sent once per client, not per sample.
    /// Linear models need no evaluation key: 0.
    pub evaluation_key: usize,
}

/// What bootstrapping noise does to decrypted results: tfhe's formulas, and what the run saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NoiseFigures {
    /// Standard deviation of the position each lookup layer reads (positions of 2N).
    pub lookup_sigma_positions: Vec<f64>,
    /// Expected lookups per sample whose output differs from the clear twin's, over the test
    /// rows (first layer exact, later layers from their clean inputs).
    pub expected_lookup_mismatches: f64,
    /// Mean label agreement of the clear twin with noisy simulations of the test rows
    /// (`eval::noisy_label_agreement`): what encrypted runs agree on, on average.
    pub expected_label_agreement: f64,
    /// Standard deviation of a decrypted score, in score units.
    pub score_sigma: f64,
    /// Test rows whose decrypted scores all equalled `simulate`'s.
    pub exact_score_rows: f64,
}

/// Time to make and to load the evaluation key, in milliseconds (0 for models without one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct EvaluationKeyTimes {
    /// Generating the evaluation key on the client, ms.
    pub generate: f64,
    /// Loading it into the server from its serialized form, as from the network, ms (with
    /// `eval --server`, the upload to the service).
    pub expand: f64,
}

/// Every sample's stage timings (for charts; not in the JSON): `n_test` values each, in
/// milliseconds, in test-row order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PerSample {
    /// Encryption of each test row, ms (as `Latency::encrypt`).
    pub encrypt_ms: Vec<f64>,
    /// Inference on each test row, ms (as `Latency::infer`).
    pub infer_ms: Vec<f64>,
    /// Decryption of each test row, ms (as `Latency::decrypt`).
    pub decrypt_ms: Vec<f64>,
    /// Encrypt + infer + decrypt of each test row, ms: the source of `latency_p90_ms` and of
    /// the latency histogram.
    pub total_ms: Vec<f64>,
}

/// One evaluation run. Field names and nesting are the CLI's JSON contract.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Dataset name: the CSV's file stem (`breast_cancer` for the built-in copy).
    pub dataset: String,
    /// Model family: `logistic`, `linear`, `mlp`, `tree` or `forest`.
    pub model: String,
    /// `binary-classification`, `multiclass-classification` or `regression`.
    pub task: String,
    /// Training rows.
    pub n_train: usize,
    /// Test rows evaluated (each encrypted one at a time); at most `--limit`.
    pub n_test: usize,
    /// Features per row, after one-hot encoding of text columns.
    pub n_features: usize,
    /// Number of classes; `None` for regression.
    pub n_classes: Option<usize>,
    /// The TFHE parameter set, one line (name, GLWE dimension `k`, polynomial size `N`,
    /// noise, modulus).
    pub params: String,
    /// Bits per quantized input feature.
    pub bits: u32,
    /// Seed of the train/test split and of training.
    pub seed: u64,
    /// Fraction of the rows held out for testing, strictly between 0 and 1.
    pub test_fraction: f64,
    /// Accuracy of each pipeline on the test rows, fractions in `0..=1` (classification only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<Triple>,
    /// Label agreement between the pipelines (classification only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement: Option<Agreement>,
    /// R² (coefficient of determination) of each pipeline on the test rows (regression only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r2: Option<Triple>,
    /// Mean Tweedie deviance of each pipeline on the test rows, for the model's power (0:
    /// squared error; Poisson, Gamma and Tweedie regressions only; lower is better), as
    /// scikit-learn's `mean_tweedie_deviance`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deviance: Option<Triple>,
    /// D², the fraction of deviance explained (1 is perfect, 0 the test mean), as
    /// scikit-learn's `d2_tweedie_score` (GLMs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub d2: Option<Triple>,
    /// Largest absolute prediction differences, in target units (regression only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_abs_error: Option<ErrorPair>,
    /// Median per-sample latency of each stage, milliseconds.
    pub latency_ms: Latency,
    /// 90th percentile of the per-sample total (encrypt + infer + decrypt), milliseconds.
    pub latency_p90_ms: f64,
    /// Encrypt + infer + decrypt of the whole test set in parallel on all cores, rows per second
    /// (samples/s; at most `eval::BOOTSTRAPPED_BATCH_ROWS` rows for bootstrapped models).
    pub throughput_per_s: f64,
    /// Serialized ciphertext and evaluation key sizes, bytes.
    pub bytes: Bytes,
    /// Training the plaintext model, milliseconds (compilation not included).
    pub train_ms: f64,
    /// Test feature values outside the calibrated range, clipped (never wrapped).
    pub clipped_features: u64,
    /// Every decrypted score equalled the clear twin's (`simulate`).
    pub exact_scores: bool,
    /// `64-32-10 MLP, ReLU clipped to 7 levels, ...` or `30→1 linear`.
    pub architecture: String,
    /// Programmable bootstraps per inference (0 for linear models returning scores).
    pub pbs_per_sample: usize,
    /// `scores`, `label` or `top-K` (the server returns only the sanitized label, or the K
    /// best labels).
    #[serde(default)]
    pub output: String,
    /// Label mode's comparison circuit and sanitization (label mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<LabelFigures>,
    /// Evaluation key generation (client) and expansion (server), milliseconds (0 if none).
    pub evaluation_key_ms: EvaluationKeyTimes,
    /// Bootstrapping noise, predicted and seen (empty for leveled models, which are exact).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise: Option<NoiseFigures>,
    /// Median milliseconds of each program step, one sample at a time (`linear 64→32`, ...).
    pub step_ms: Vec<(String, f64)>,
    /// Features constant on the training rows (weight 0 in every family).
    #[serde(default)]
    pub constant_features: Vec<String>,
    /// What the user should know about this run: quantized accuracy (or R²) more than two
    /// points below plaintext, constant features, a ridge fallback. Also printed on stderr.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Every sample's stage timings, milliseconds (for charts; skipped in the JSON).
    #[serde(skip)]
    pub per_sample: PerSample,
}

/// What label mode costs and guarantees.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct LabelFigures {
    /// Labels returned per inference, best first (1: the argmax; `K` in top-K mode).
    pub labels: usize,
    /// Bootstraps of the label head per inference (comparisons, one-hot, sanitization).
    pub bootstraps: usize,
    /// Of which one after another.
    pub sequential_bootstraps: usize,
    /// Scales per comparison.
    pub scales: usize,
    /// Union bound on a lookup reading beyond its margin, per inference.
    pub failure_probability: f64,
    /// Statistical distance between two models' sanitized labels for the same prediction.
    pub sanitization_distance: f64,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

fn size(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
    } else if bytes >= 1 << 10 {
        format!("{:.1} KiB ({bytes} B)", bytes as f64 / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

impl EvalReport {
    /// An HTML table of the figures (notebooks show it inline).
    pub fn to_html(&self) -> String {
        let mut h = format!(
            "<div><b>{} · {} ({})</b> · {} train / {} test rows, {} features · {}-bit · <code>{}</code>",
            escape(&self.dataset),
            escape(&self.model),
            escape(&self.task),
            self.n_train,
            self.n_test,
            self.n_features,
            self.bits,
            escape(&self.params)
        );
        h += "<table><tr><th></th><th>plaintext</th><th>quantized</th><th>encrypted</th></tr>";
        let row = |name: &str, t: &Triple, f: &dyn Fn(f64) -> String| {
            format!(
                "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                f(t.plain),
                f(t.quantized),
                f(t.encrypted)
            )
        };
        if let Some(a) = &self.accuracy {
            h += &row("accuracy", a, &pct);
        }
        if let Some(r) = &self.r2 {
            h += &row("R²", r, &|x| format!("{x:.4}"));
        }
        if let Some(d) = &self.deviance {
            h += &row("mean deviance", d, &|x| format!("{x:.4}"));
        }
        if let Some(d) = &self.d2 {
            h += &row("D²", d, &|x| format!("{x:.4}"));
        }
        h += "</table>";
        if let Some(a) = &self.agreement {
            h += &format!(
                "<p>label agreement: encrypted vs quantized <b>{}</b>, encrypted vs plaintext {}, quantized vs plaintext {}; encrypted {} equal simulate: <b>{}</b></p>",
                pct(a.encrypted_vs_quantized),
                pct(a.encrypted_vs_plain),
                pct(a.quantized_vs_plain),
                self.compared(),
                if self.exact_scores { "yes, every row" } else { "NO" }
            );
        }
        let l = &self.latency_ms;
        h += "<table><tr><th>per sample (median)</th><th>key generation</th><th>encrypt</th><th>infer</th><th>decrypt</th><th>total</th><th>throughput (all cores)</th></tr>";
        h += &format!(
            "<tr><td>milliseconds</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{} samples/s</td></tr></table>",
            l.keygen, l.encrypt, l.infer, l.decrypt, l.total, self.rate()
        );
        h += &format!(
            "<p>bytes per sample: input ciphertext {}, output ciphertext {}, evaluation key {}</p></div>",
            size(self.bytes.input_ciphertext),
            size(self.bytes.output_ciphertext),
            size(self.bytes.evaluation_key)
        );
        h
    }

    /// Inline display in evcxr (Jupyter's Rust kernel).
    pub fn evcxr_display(&self) {
        println!(
            "EVCXR_BEGIN_CONTENT text/html\n{}\nEVCXR_END_CONTENT",
            self.to_html()
        );
    }

    /// The report as pretty-printed JSON: what `fhe-ml eval --json` prints (`per_sample`
    /// left out).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serializes")
    }

    /// What decryption is compared with `simulate` on: labels in label and top-k modes, else
    /// scores.
    fn compared(&self) -> &'static str {
        if self.output == "scores" {
            "scores"
        } else {
            "labels"
        }
    }

    /// Throughput, with decimals for slow models (label mode, networks: under one per second).
    fn rate(&self) -> String {
        if self.throughput_per_s < 10.0 {
            format!("{:.2}", self.throughput_per_s)
        } else {
            format!("{:.0}", self.throughput_per_s)
        }
    }

    /// The human-readable table `fhe-ml demo` and `fhe-ml eval` print: metrics per pipeline,
    /// agreement, latencies (ms), throughput (samples/s), sizes and warnings.
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        let classes = self
            .n_classes
            .map_or(String::new(), |c| format!(", {c} classes"));
        s += &format!(
            "fhe-ml · {} · {} ({}) · {} train / {} test rows, {} features{classes}\n",
            self.dataset, self.model, self.task, self.n_train, self.n_test, self.n_features
        );
        s += &format!("parameters: {}\n", self.params);
        s += &format!(
            "quantization: {}-bit inputs; {} test feature value(s) clipped\n",
            self.bits, self.clipped_features
        );
        if !self.constant_features.is_empty() {
            s += &format!(
                "constant on the training rows (weight 0): {}\n",
                self.constant_features.join(", ")
            );
        }
        s += "\n";
        let (metric, triple) = match (&self.accuracy, &self.r2) {
            (Some(a), _) => ("accuracy", a),
            (None, Some(r)) => ("R²", r),
            (None, None) => ("metric", &Triple::default()),
        };
        let fmt = |x: f64| {
            if self.accuracy.is_some() {
                pct(x)
            } else {
                format!("{x:.4}")
            }
        };
        s += &format!(
            "{:<26}{:>12}{:>12}{:>12}\n",
            "", "plaintext", "quantized", "encrypted"
        );
        s += &format!(
            "{metric:<26}{:>12}{:>12}{:>12}\n",
            fmt(triple.plain),
            fmt(triple.quantized),
            fmt(triple.encrypted)
        );
        for (name, t) in [("mean deviance", &self.deviance), ("D²", &self.d2)] {
            if let Some(t) = t {
                s += &format!(
                    "{name:<26}{:>12.4}{:>12.4}{:>12.4}\n",
                    t.plain, t.quantized, t.encrypted
                );
            }
        }
        if let Some(a) = &self.agreement {
            s += &format!(
                "label agreement: quantized vs plaintext {}, encrypted vs quantized {}, encrypted vs plaintext {}\n",
                pct(a.quantized_vs_plain),
                pct(a.encrypted_vs_quantized),
                pct(a.encrypted_vs_plain)
            );
        }
        if let Some(e) = &self.max_abs_error {
            s += &format!(
                "max |encrypted − quantized| = {:.3e}, max |encrypted − plain| = {:.4}\n",
                e.encrypted_vs_quantized, e.encrypted_vs_plain
            );
        }
        s += &format!(
            "encrypted {} equal simulate: {}\n",
            self.compared(),
            if self.exact_scores {
                "yes, every row"
            } else {
                "NO"
            }
        );
        if let Some(h) = &self.label {
            s += &format!(
                "{} mode: {} bootstraps ({} in sequence, {} scales per comparison), failure ≤ {:.1e}, sanitized to statistical distance {:.1e}\n",
                self.output,
                h.bootstraps,
                h.sequential_bootstraps,
                h.scales,
                h.failure_probability,
                h.sanitization_distance
            );
        }
        s += "\n";
        let l = &self.latency_ms;
        s += "latency per sample (median, one sample at a time):\n";
        for (name, v) in [
            ("key generation", l.keygen),
            ("encrypt (client)", l.encrypt),
            ("infer (server)", l.infer),
            ("decrypt (client)", l.decrypt),
            ("total", l.total),
        ] {
            s += &format!("  {name:<24}{:>10.3} ms\n", v);
        }
        s += &format!(
            "throughput (encrypt+infer+decrypt, all cores): {} samples/s\n\n",
            self.rate()
        );
        s += &format!(
            "bytes per sample: input ciphertext {}, output ciphertext {}, evaluation key {}\n",
            size(self.bytes.input_ciphertext),
            size(self.bytes.output_ciphertext),
            size(self.bytes.evaluation_key)
        );
        for w in &self.warnings {
            s += &format!("warning: {w}\n");
        }
        s
    }
}

/// One row of `bench/results/compare.json` (written by `scripts/compare`): one system on one
/// workload, measured in the same run on the same machine. Missing values (a system that
/// cannot run a workload) are `None`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ComparisonRow {
    /// The system measured: `fhe-ml`, `concrete-ml` or `tenseal`.
    pub system: String,
    /// The workload: dataset and model (`bc-logistic`, `digits-mlp`, ...).
    pub workload: String,
    /// Plaintext accuracy on the evaluated test rows, a fraction in `0..=1`.
    pub accuracy_plain: Option<f64>,
    /// Accuracy of the decrypted predictions, a fraction in `0..=1`.
    pub accuracy_encrypted: Option<f64>,
    /// Plaintext R² on the evaluated test rows (regressions; `None` for classifiers).
    #[serde(default)]
    pub r2_plain: Option<f64>,
    /// R² of the decrypted predictions (regressions).
    #[serde(default)]
    pub r2_encrypted: Option<f64>,
    /// Median per-sample latency, encrypt + infer + decrypt, milliseconds.
    pub latency_ms_median: Option<f64>,
    /// 90th percentile of the per-sample latency, milliseconds.
    pub latency_ms_p90: Option<f64>,
    /// Samples per second (fhe-ml: a batch on all cores; Concrete ML and TenSEAL: one row at
    /// a time).
    pub throughput_per_s: Option<f64>,
    /// Key generation, **seconds** (not ms).
    pub keygen_s: Option<f64>,
    /// Serialized evaluation (public) key material, bytes.
    pub evaluation_key_bytes: Option<u64>,
    /// One row's serialized input ciphertext, bytes.
    pub input_bytes: Option<u64>,
    /// One row's serialized output ciphertext, bytes.
    pub output_bytes: Option<u64>,
    /// The machine: CPU model and core count.
    pub machine: String,
    /// Date of the run, ISO 8601 (`YYYY-MM-DD`).
    pub date: String,
    /// Encrypted test rows measured.
    pub n_rows: Option<usize>,
    /// Model architecture or system settings, or why the workload is unsupported.
    pub note: Option<String>,
}

/// Reads a comparison results file (a JSON list of [`ComparisonRow`]s).
///
/// # Errors
///
/// `Error::Io` if the file cannot be read; `Error::Csv` (naming the file) if it is not a JSON
/// list of comparison rows.
pub fn load_comparison(path: impl AsRef<std::path::Path>) -> crate::Result<Vec<ComparisonRow>> {
    load_results(path.as_ref(), "comparison")
}

/// Reads a JSON results file of type `T`; `what` names the kind in the error.
fn load_results<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
    what: &str,
) -> crate::Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| crate::Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| crate::Error::Csv {
        path: path.to_path_buf(),
        message: format!("not a {what} results file: {e}"),
    })
}

/// `bench/results/techniques.json` (written by `scripts/techniques`): fhe-ml beside
/// differential privacy, secure multi-party computation, federated learning and trusted
/// hardware on the same splits and model shapes.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct TechniqueResults {
    /// Date and time of the run, ISO 8601.
    pub generated: String,
    /// The machine: cores and platform.
    pub machine: String,
    /// A small CI run (few rows, seeds and rounds), not figures to quote.
    pub smoke: bool,
    /// Library name → version, for every library the run used.
    pub libraries: std::collections::BTreeMap<String, String>,
    /// Remarks on how the run was made (clipping bounds, what was skipped, ...).
    #[serde(default)]
    pub notes: Vec<String>,
    /// One row per (technique, workload, setting).
    pub rows: Vec<TechniqueRow>,
}

/// One row of [`TechniqueResults`]: a technique on a workload in one setting (an ε, a round
/// of federated training, ...). Missing values are `None`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct TechniqueRow {
    /// `plaintext`, `FHE`, `DP`, `MPC`, `FL` or `TEE`.
    pub technique: String,
    /// The library and its version (`diffprivlib 0.6.6`).
    pub library: String,
    /// `breast_cancer-logistic`, `digits-logistic` or `digits-mlp`; `None` for published
    /// figures of other workloads (TEE rows).
    pub workload: Option<String>,
    /// The setting in words (`ε = 0.5`, `round 7, non-IID, 8 clients`, `2 parties`).
    pub setting: String,
    /// DP: the privacy budget ε.
    pub epsilon: Option<f64>,
    /// FL: the round this accuracy was measured after (1-based).
    pub round: Option<u32>,
    /// FL: `iid` or `non-iid`.
    pub partition: Option<String>,
    /// FL: the number of clients.
    pub clients: Option<u32>,
    /// Test accuracy, a fraction in `0..=1` (the mean over seeds when `seeds` is given).
    pub accuracy: Option<f64>,
    /// Standard deviation of the accuracy over seeds, a fraction.
    pub accuracy_std: Option<f64>,
    /// Seeds averaged.
    pub seeds: Option<u32>,
    /// Time to answer one query, milliseconds.
    pub latency_ms_per_sample: Option<f64>,
    /// Bytes that cross the network per query (both ways).
    pub bytes_per_sample: Option<f64>,
    /// MPC: communication rounds per query.
    pub comm_rounds_per_sample: Option<f64>,
    /// FL: bytes exchanged in all, up to this round.
    pub bytes_total: Option<f64>,
    /// Measured in this run; `false` for figures quoted from a source.
    pub measured: bool,
    /// For quoted figures: the citation and its URL.
    pub source: Option<String>,
}

/// Reads a techniques results file ([`TechniqueResults`]).
///
/// # Errors
///
/// `Error::Io` if the file cannot be read; `Error::Csv` (naming the file) if it is not a
/// techniques results file.
pub fn load_techniques(path: impl AsRef<std::path::Path>) -> crate::Result<TechniqueResults> {
    load_results(path.as_ref(), "techniques")
}
