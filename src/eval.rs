//! The evaluation pipeline behind `fhe-ml demo` and `fhe-ml eval`: load, split, train, compile,
//! generate keys, encrypt, infer, decrypt, and measure accuracy, agreement, latency, throughput
//! and sizes.

use std::path::PathBuf;
use std::time::Instant;

use indicatif::ProgressBar;
use ndarray::Axis;
use rayon::prelude::*;

use crate::client::Client;
use crate::compiler::{compile, Options};
use crate::data::{self, CsvOptions, Split, Table};
use crate::error::{Error, Result};
use crate::fhe::EvaluationKey;
use crate::fhe::OutputMode;
use crate::model::CompiledModel;
use crate::program::encrypted::StepTiming;
use crate::program::Prediction;
use crate::protocol::{EncryptedInput, EncryptedOutput};
use crate::quant::Quantization;
use crate::remote::RemoteServer;
use crate::report::{
    Agreement, Bytes, EvalReport, EvaluationKeyTimes, LabelFigures, Latency, NoiseFigures,
    PerSample, Triple,
};
use crate::server::Server;
use crate::train;
use crate::train::ensembles::{GbdtParams, TreeRegressorParams};
use crate::train::linear::{GlmParams, PenalizedParams, SvmParams};
use crate::train::mlp::MlpConfig;
use crate::train::params::{ForestParams, LinearParams, LogisticParams, MlpParams};
use crate::train::trees::ForestConfig;

/// Which model family to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// Logistic regression (binary or multinomial, from the number of classes).
    Logistic,
    /// Ordinary least-squares regression on a real-valued target.
    Linear,
    /// A multilayer perceptron classifier (`EvalConfig::mlp` sets its shape).
    Mlp,
    /// A decision tree (`EvalConfig::forest` sets its depth; one tree).
    Tree,
    /// A random forest (`EvalConfig::forest` sets depth and number of trees).
    Forest,
    /// A model imported from the ONNX file `EvalConfig::onnx` (no training).
    Onnx,
    /// A linear SVM classifier (one-vs-rest for three classes or more), `C = 1`.
    Svm,
    /// Ridge regression, `alpha = 1` (scikit-learn's units).
    Ridge,
    /// Lasso regression, `alpha = 1`.
    Lasso,
    /// ElasticNet regression, `alpha = 1`, `l1_ratio = 0.5`.
    ElasticNet,
    /// Poisson regression (log link), `alpha = 1`: counts.
    Poisson,
    /// Gamma regression (log link), `alpha = 1`: positive values.
    Gamma,
    /// Tweedie regression of power 1.5 (log link), `alpha = 1`: non-negative values with
    /// exact zeros.
    Tweedie,
    /// A regression tree (`EvalConfig::regression_trees` sets its depth; one tree).
    TreeRegressor,
    /// A random forest of regression trees (`EvalConfig::regression_trees`).
    ForestRegressor,
    /// Gradient-boosted trees, classifier (`EvalConfig::gbdt`).
    Gbdt,
    /// Gradient-boosted trees, regressor (`EvalConfig::gbdt`).
    GbdtRegressor,
}

impl ModelKind {
    /// The family's name as `--model` takes it and reports and service model names carry it
    /// (`logistic`, `linear`, `mlp`, `tree`, `forest`, `svm`, `ridge`, `lasso`, `elasticnet`,
    /// `poisson`, `gamma`, `tweedie`, `tree-regressor`, `forest-regressor`, `gbdt`,
    /// `gbdt-regressor`).
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Logistic => "logistic",
            ModelKind::Linear => "linear",
            ModelKind::Mlp => "mlp",
            ModelKind::Tree => "tree",
            ModelKind::Forest => "forest",
            ModelKind::Onnx => "onnx",
            ModelKind::Svm => "svm",
            ModelKind::Ridge => "ridge",
            ModelKind::Lasso => "lasso",
            ModelKind::ElasticNet => "elasticnet",
            ModelKind::Poisson => "poisson",
            ModelKind::Gamma => "gamma",
            ModelKind::Tweedie => "tweedie",
            ModelKind::TreeRegressor => "tree-regressor",
            ModelKind::ForestRegressor => "forest-regressor",
            ModelKind::Gbdt => "gbdt",
            ModelKind::GbdtRegressor => "gbdt-regressor",
        }
    }

    /// Whether the family predicts a real value (a regression split, R² reported).
    pub fn is_regression(self) -> bool {
        matches!(
            self,
            ModelKind::Linear
                | ModelKind::Ridge
                | ModelKind::Lasso
                | ModelKind::ElasticNet
                | ModelKind::Poisson
                | ModelKind::Gamma
                | ModelKind::Tweedie
                | ModelKind::TreeRegressor
                | ModelKind::ForestRegressor
                | ModelKind::GbdtRegressor
        )
    }

    /// The GLM settings of `Poisson`, `Gamma` and `Tweedie` (power 1.5); `None` otherwise.
    pub fn glm(self) -> Option<GlmParams> {
        match self {
            ModelKind::Poisson => Some(GlmParams::poisson()),
            ModelKind::Gamma => Some(GlmParams::gamma()),
            ModelKind::Tweedie => Some(GlmParams::tweedie(1.5)),
            _ => None,
        }
    }
}

/// Where the data comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A CSV file with a header and a `target` column, read as `EvalConfig::csv` says.
    File(PathBuf),
    /// The built-in copy of `data/breast_cancer.csv`.
    BuiltinBreastCancer,
}

/// Settings of one evaluation run (`fhe-ml eval`'s flags); [`EvalConfig::new`] gives the
/// defaults.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    /// Where the data comes from.
    pub source: Source,
    /// How to read a `Source::File` (delimiter detected by default).
    pub csv: CsvOptions,
    /// Which model family to train.
    pub model: ModelKind,
    /// Bit widths of the linear models (`Logistic`, `Linear`): inputs and weights. MLPs and
    /// trees take theirs from `mlp` and `forest`.
    pub quantization: Quantization,
    /// Seed of the train/test split and of training, for reproducible runs.
    pub seed: u64,
    /// Fraction of the rows held out for testing, strictly between 0 and 1 (stratified by
    /// class for classifiers, as scikit-learn's `train_test_split` with `stratify`).
    pub test_fraction: f64,
    /// Evaluate at most this many test rows (the first ones of the test split).
    pub limit: Option<usize>,
    /// Shape, quantization and training of `ModelKind::Mlp` (its seed is `seed`).
    pub mlp: MlpConfig,
    /// Depth, trees and feature bits of `ModelKind::Tree` and `Forest` (a tree always has
    /// one tree; its seed is `seed`).
    pub forest: ForestConfig,
    /// Run inference through this service (`fhe-ml serve`) instead of a local server: the
    /// model trained here must be the one it serves as `{dataset}-{model}` (`-label` appended
    /// in label mode).
    pub server: Option<String>,
    /// The service's API token and CA certificate (with `server`).
    pub remote: crate::remote::RemoteOptions,
    /// Scores (default), or the sanitized label (or top-k labels) only.
    pub output: OutputMode,
    /// The ONNX file `ModelKind::Onnx` imports; the data's training rows calibrate it.
    pub onnx: Option<PathBuf>,
    /// Rounds, depth and learning rate of `ModelKind::Gbdt` and `GbdtRegressor`.
    pub gbdt: GbdtParams,
    /// Trees and depth of `ModelKind::TreeRegressor` (always one tree) and `ForestRegressor`.
    pub regression_trees: TreeRegressorParams,
}

impl EvalConfig {
    /// A run of `model` on `source` with the defaults: delimiter detected, 8-bit quantization,
    /// seed 42, a 20% test split, every test row, local inference, scores output; a
    /// `Forest` gets [`ForestConfig::forest`] (10 trees of depth 4), other models one tree's
    /// defaults.
    pub fn new(source: Source, model: ModelKind) -> Self {
        Self {
            source,
            csv: CsvOptions::default(),
            model,
            quantization: Quantization::default(),
            seed: 42,
            test_fraction: 0.2,
            limit: None,
            mlp: MlpConfig::default(),
            forest: if model == ModelKind::Forest {
                ForestConfig::forest()
            } else {
                ForestConfig::default()
            },
            server: None,
            remote: Default::default(),
            output: OutputMode::Scores,
            onnx: None,
            gbdt: GbdtParams::default(),
            regression_trees: if model == ModelKind::ForestRegressor {
                TreeRegressorParams::forest()
            } else {
                TreeRegressorParams::tree()
            },
        }
    }
}

/// The `q` quantile (0..=1) of some timings, nearest rank (0 for none).
pub fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q.clamp(0.0, 1.0) * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// The median of some timings (0 for none).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Label agreement with the clear twin of `replicas` noisy simulations of `rows`
/// (`CompiledModel::simulate_noisy`), one fraction per replica: how often bootstrapping noise
/// changes a label, estimated in the clear. `rows` are raw (unscaled) feature rows,
/// `n_rows × n_features`; the result holds `replicas` fractions in `0..=1`.
///
/// # Errors
///
/// `Error::Shape` if a row does not have the model's number of features; `Error::Input` if a
/// feature is not finite; or an error from the model's noise formulas or decoding.
pub fn noisy_label_agreement(
    model: &CompiledModel,
    rows: &[Vec<f64>],
    replicas: usize,
    seed: u64,
) -> Result<Vec<f64>> {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let label =
        |outputs: &[i64]| -> Result<Option<usize>> { Ok(model.decode(outputs)?.class_index()) };
    let clear: Vec<Option<usize>> = rows
        .iter()
        .map(|r| label(&model.simulate(r)?))
        .collect::<Result<_>>()?;
    (0..replicas)
        .map(|_| {
            let mut same = 0;
            for (row, want) in rows.iter().zip(&clear) {
                same += usize::from(label(&model.simulate_noisy(row, &mut rng)?)? == *want);
            }
            Ok(fraction(same, rows.len()))
        })
        .collect()
}

/// Encrypted inference over some rows, one row at a time as a client sends them, every stage
/// timed: what [`timed_run`] returns and the notebooks chart. All vectors hold one entry per
/// row, in row order.
#[derive(Debug, Clone)]
pub struct TimedRun {
    /// The client's decrypted predictions.
    pub predictions: Vec<Prediction>,
    /// The encrypted results as the server returned them (for further decryption, such as the
    /// ranked classes of top-K mode with [`Client::decrypt_labels`]).
    pub outputs: Vec<EncryptedOutput>,
    /// Rows whose decrypted prediction equals the clear twin's (`Mode::Clear`): every row for
    /// leveled models and trees; bootstrapped networks may differ where noise flips a lookup.
    pub equal_to_clear: usize,
    /// Client encryption time per row, in ms.
    pub encrypt_ms: Vec<f64>,
    /// Server inference time per row, in ms.
    pub infer_ms: Vec<f64>,
    /// Client decryption (and decoding) time per row, in ms.
    pub decrypt_ms: Vec<f64>,
    /// Server time per program step (`linear 64→32`, `lookup ×32 (bootstrap)`, ...), in ms,
    /// one entry per row for each step, in program order.
    pub step_ms: Vec<(String, Vec<f64>)>,
    /// Serialized size of one encrypted input, in bytes (the first row's: all rows weigh the
    /// same).
    pub input_bytes: usize,
    /// Serialized size of one encrypted result, in bytes.
    pub output_bytes: usize,
}

impl TimedRun {
    /// The predicted class indices (`usize::MAX` for a regression value).
    pub fn class_indices(&self) -> Vec<usize> {
        self.predictions
            .iter()
            .map(|p| p.class_index().unwrap_or(usize::MAX))
            .collect()
    }

    /// Encrypt + infer + decrypt per row, in ms.
    pub fn total_ms(&self) -> Vec<f64> {
        (0..self.infer_ms.len())
            .map(|i| self.encrypt_ms[i] + self.infer_ms[i] + self.decrypt_ms[i])
            .collect()
    }

    /// The median server time of each program step, in ms, in program order.
    pub fn step_medians(&self) -> Vec<(String, f64)> {
        self.step_ms
            .iter()
            .map(|(name, v)| (name.clone(), median(v)))
            .collect()
    }
}

/// Runs `rows` (`n_rows × n_features`, raw values) through encrypted inference one at a time:
/// `client` encrypts, `server` infers (each program step timed), `client` decrypts; each result
/// is compared with `model`'s clear twin. `client` and `server` must come from `model`
/// (`CompiledModel::keygen`, or a server given the client's evaluation key).
///
/// # Errors
///
/// `Error::Shape` if a row does not have the model's number of features; `Error::Input` if a
/// feature is not finite; encryption, inference, decryption and serialization errors (such as
/// `Error::Wire`), for the first row that fails.
pub fn timed_run(
    model: &CompiledModel,
    client: &Client,
    server: &Server,
    rows: &[Vec<f64>],
) -> Result<TimedRun> {
    let mut run = TimedRun {
        predictions: Vec::with_capacity(rows.len()),
        outputs: Vec::with_capacity(rows.len()),
        equal_to_clear: 0,
        encrypt_ms: Vec::with_capacity(rows.len()),
        infer_ms: Vec::with_capacity(rows.len()),
        decrypt_ms: Vec::with_capacity(rows.len()),
        step_ms: Vec::new(),
        input_bytes: 0,
        output_bytes: 0,
    };
    for row in rows {
        let t = Instant::now();
        let input = client.encrypt(row)?;
        run.encrypt_ms.push(ms(t));
        let t = Instant::now();
        let (output, steps) = server.infer_profiled(&input)?;
        run.infer_ms.push(ms(t));
        let t = Instant::now();
        let prediction = client.decrypt(&output)?;
        run.decrypt_ms.push(ms(t));
        push_steps(&mut run.step_ms, steps);
        run.equal_to_clear +=
            usize::from(prediction == model.predict(row, crate::model::Mode::Clear)?);
        // Every row weighs the same on the wire: serialize the first one only.
        if run.input_bytes == 0 {
            run.input_bytes = input.to_bytes()?.len();
            run.output_bytes = output.to_bytes()?.len();
        }
        run.predictions.push(prediction);
        run.outputs.push(output);
    }
    Ok(run)
}

/// Appends one row's step timings to per-step samples (`(step, ms per row)`, in program order).
fn push_steps(samples: &mut Vec<(String, Vec<f64>)>, steps: Vec<StepTiming>) {
    for (i, step) in steps.into_iter().enumerate() {
        match samples.get_mut(i) {
            Some((_, v)) => v.push(step.ms),
            None => samples.push((step.step, vec![step.ms])),
        }
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// Fraction of positions where two label vectors agree (accuracy against the truth).
pub fn agreement<T: PartialEq>(a: &[T], b: &[T]) -> f64 {
    fraction(
        a.iter().zip(b).filter(|(x, y)| x == y).count(),
        a.len().min(b.len()),
    )
}

fn fraction(hits: usize, n: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        hits as f64 / n as f64
    }
}

/// R², the coefficient of determination of `predicted` against `truth` (1 is perfect, 0 the
/// mean of `truth`), as scikit-learn's `r2_score`; 0 when `truth` is constant.
pub fn r2(truth: &[f64], predicted: &[f64]) -> f64 {
    let mean = truth.iter().sum::<f64>() / truth.len().max(1) as f64;
    let ss_tot: f64 = truth.iter().map(|t| (t - mean).powi(2)).sum();
    let ss_res: f64 = truth
        .iter()
        .zip(predicted)
        .map(|(t, p)| (t - p).powi(2))
        .sum();
    if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else {
        0.0
    }
}

/// Mean Tweedie deviance of predicted means `mu` against `truth` for `power` (0: squared
/// error, 1: Poisson, 2: Gamma), as scikit-learn's `mean_tweedie_deviance`; NaN where a mean
/// is not positive (powers ≥ 1) or a target is outside the distribution's range.
pub fn mean_tweedie_deviance(truth: &[f64], mu: &[f64], power: f64) -> f64 {
    let unit = |y: f64, m: f64| -> f64 {
        if power == 0.0 {
            (y - m).powi(2)
        } else if m <= 0.0 {
            f64::NAN
        } else if power == 1.0 {
            let ylog = if y == 0.0 { 0.0 } else { y * (y / m).ln() };
            2.0 * (ylog - y + m)
        } else if power == 2.0 {
            2.0 * ((m / y).ln() + y / m - 1.0)
        } else {
            let p = power;
            2.0 * (y.max(0.0).powf(2.0 - p) / ((1.0 - p) * (2.0 - p))
                - y * m.powf(1.0 - p) / (1.0 - p)
                + m.powf(2.0 - p) / (2.0 - p))
        }
    };
    let n = truth.len().min(mu.len()).max(1) as f64;
    truth.iter().zip(mu).map(|(&y, &m)| unit(y, m)).sum::<f64>() / n
}

/// D², the fraction of Tweedie deviance explained: `1 - D(truth, mu) / D(truth, mean)`, as
/// scikit-learn's `d2_tweedie_score` (1 is perfect, 0 the test mean).
pub fn d2_tweedie(truth: &[f64], mu: &[f64], power: f64) -> f64 {
    let mean = truth.iter().sum::<f64>() / truth.len().max(1) as f64;
    let null = mean_tweedie_deviance(truth, &vec![mean; truth.len()], power);
    1.0 - mean_tweedie_deviance(truth, mu, power) / null
}

/// Runs the whole pipeline.
///
/// # Errors
///
/// As [`run_with_progress`].
pub fn run(config: &EvalConfig) -> Result<EvalReport> {
    run_with_progress(config, &ProgressBar::hidden())
}

/// Runs the whole pipeline; `progress` advances once per encrypted test row.
///
/// # Errors
///
/// - `Error::Io` or `Error::Csv` if the CSV cannot be read or parsed;
/// - `Error::Data` if the table cannot be split (`test_fraction` outside `(0, 1)`, a
///   non-integer or single class, a class with one row, too few rows);
/// - `Error::Training` if training fails; `Error::Compile` if the model does not compile or
///   the output mode does not apply to it;
/// - `Error::Input` if `limit` is `Some(0)` or `server` is not an `http://` URL;
/// - `Error::Remote` if the service fails, cannot be reached or serves another model;
/// - `Error::Other` if batch and one-at-a-time predictions of a leveled model differ;
/// - key generation, encryption and decryption errors (such as `Error::Wire`).
pub fn run_with_progress(config: &EvalConfig, progress: &ProgressBar) -> Result<EvalReport> {
    let table = match &config.source {
        Source::File(path) => data::load_csv_with(path, config.csv)?,
        Source::BuiltinBreastCancer => {
            data::parse_csv_str(data::BREAST_CANCER_CSV, "breast_cancer")?
        }
    };
    let imported = import_onnx(config)?;
    match (config.model, &imported) {
        (kind, _) if kind.is_regression() => run_linear(config, &table, None, progress),
        (_, Some(i)) if !i.model.is_classifier() => run_linear(config, &table, Some(i), progress),
        _ => {
            let split = table.split(config.test_fraction, config.seed)?;
            let built = build_classifier(config, &split, imported.as_ref())?;
            classifier_report(config, &split, built, progress)
        }
    }
}

/// A classifier trained and compiled, with the plaintext model's test labels.
struct BuiltClassifier {
    model: CompiledModel,
    plain: Vec<usize>,
    train_ms: f64,
}

/// Trains and compiles the configured classifier on a split: what `eval` runs, and what the
/// service serves by default (so `eval --server` meets the same model).
fn build_classifier(
    config: &EvalConfig,
    split: &Split<usize>,
    imported: Option<&Imported>,
) -> Result<BuiltClassifier> {
    let t = Instant::now();
    let rows = split.test_rows();
    // Linear models take the bits at compile time; MLPs and trees were trained at theirs.
    let options = |bits: Option<Quantization>| Options {
        quantization: bits,
        output: config.output,
    };
    match config.model {
        ModelKind::Logistic => {
            let fitted = LogisticParams::default().fit(split)?;
            let train_ms = ms(t);
            Ok(BuiltClassifier {
                model: compile(&fitted, split, options(Some(config.quantization)))?,
                plain: fitted.predict(split.test.records()),
                train_ms,
            })
        }
        ModelKind::Svm => {
            let fitted = SvmParams::default().fit(split)?;
            let train_ms = ms(t);
            Ok(BuiltClassifier {
                model: compile(&fitted, split, options(Some(config.quantization)))?,
                plain: fitted.predict(&split.test.records().to_owned()),
                train_ms,
            })
        }
        ModelKind::Gbdt => {
            let fitted = config.gbdt.seed(config.seed).fit(split)?;
            let train_ms = ms(t);
            Ok(BuiltClassifier {
                model: compile(&fitted, split, options(Some(config.quantization)))?,
                plain: fitted.predict_classes(&rows)?,
                train_ms,
            })
        }
        ModelKind::Mlp => {
            let mlp = MlpParams::from(config.mlp.clone())
                .seed(config.seed)
                .fit(split)?;
            let train_ms = ms(t);
            Ok(BuiltClassifier {
                model: compile(&mlp, split, options(None))?,
                plain: mlp.predict_float(&rows)?,
                train_ms,
            })
        }
        ModelKind::Tree | ModelKind::Forest => {
            let mut params = ForestParams::from(config.forest.clone()).seed(config.seed);
            if config.model == ModelKind::Tree {
                params = params.trees(1);
            }
            let trained = params.fit(split)?;
            let train_ms = ms(t);
            Ok(BuiltClassifier {
                model: compile(&trained, split, options(None))?,
                plain: trained.predict_plain(&rows),
                train_ms,
            })
        }
        ModelKind::Onnx => {
            let Imported {
                model: imported,
                ms: import_ms,
            } = imported
                .ok_or_else(|| Error::Input("ModelKind::Onnx needs EvalConfig::onnx".into()))?;
            let model = compile(imported, split, imported_options(config))?;
            // The float model's labels, as indices into the split's classes.
            let plain = rows
                .iter()
                .map(|r| {
                    let label = imported.label(r)?;
                    Ok(split
                        .classes
                        .iter()
                        .position(|&c| Some(c) == label)
                        .unwrap_or(usize::MAX))
                })
                .collect::<Result<_>>()?;
            Ok(BuiltClassifier {
                model,
                plain,
                train_ms: *import_ms,
            })
        }
        kind => Err(Error::Input(format!(
            "{} is a regression, not a classifier",
            kind.name()
        ))),
    }
}

/// An imported model and how long reading it took.
struct Imported {
    model: crate::import::OnnxModel,
    ms: f64,
}

/// Reads `config.onnx` once for `ModelKind::Onnx` (`None` for trained families).
fn import_onnx(config: &EvalConfig) -> Result<Option<Imported>> {
    if config.model != ModelKind::Onnx {
        return Ok(None);
    }
    let path = config
        .onnx
        .as_ref()
        .ok_or_else(|| Error::Input("ModelKind::Onnx needs EvalConfig::onnx".into()))?;
    let t = Instant::now();
    let model = crate::import::onnx(path)?;
    Ok(Some(Imported { model, ms: ms(t) }))
}

/// The compiled model `eval` would run for this configuration and data.
///
/// # Errors
///
/// `Error::Data` if the table cannot be split; `Error::Training` if training fails;
/// `Error::Compile` if the model does not compile or the output mode does not apply to it.
pub fn compile_model(config: &EvalConfig, table: &Table) -> Result<CompiledModel> {
    let imported = import_onnx(config)?;
    match config.model {
        ModelKind::Onnx => match &imported {
            Some(i) if !i.model.is_classifier() => {
                let split = table.split_regression(config.test_fraction, config.seed)?;
                compile(&i.model, &split, imported_options(config))
            }
            _ => Ok(build_classifier(
                config,
                &table.split(config.test_fraction, config.seed)?,
                imported.as_ref(),
            )?
            .model),
        },
        kind if kind.is_regression() => {
            let split = table.split_regression(config.test_fraction, config.seed)?;
            Ok(fit_regression(config, &split)?.model)
        }
        _ => Ok(build_classifier(
            config,
            &table.split(config.test_fraction, config.seed)?,
            None,
        )?
        .model),
    }
}

/// The name a model has in the service: `{dataset}-{model}`, with `-label` or `-top{K}`
/// appended in those modes; the dataset part made valid by
/// [`crate::protocol::sanitize_model_name`] (`patient data` → `patient-data`), so `serve` loads
/// whatever `export` wrote.
pub fn service_name(dataset: &str, model: ModelKind, output: OutputMode) -> String {
    family_service_name(dataset, model.name(), output)
}

/// [`service_name`] for any family name (an imported model's file stem, say).
pub fn family_service_name(dataset: &str, family: &str, output: OutputMode) -> String {
    let family = crate::protocol::sanitize_model_name(family);
    let suffix = match output {
        OutputMode::Scores => format!("-{family}"),
        OutputMode::Label => format!("-{family}-label"),
        OutputMode::TopK(k) => format!("-{family}-top{k}"),
    };
    let dataset: String = crate::protocol::sanitize_model_name(dataset)
        .chars()
        .take(crate::protocol::MAX_MODEL_NAME.saturating_sub(suffix.len()))
        .collect();
    let dataset = dataset.trim_end_matches(['-', '.']);
    let dataset = if dataset.is_empty() { "model" } else { dataset };
    format!("{dataset}{suffix}")
}

/// The encrypted run shared by every task: keys, then per-sample timings one row at a time
/// (with each program step timed), then the batch rate on all cores. Returns predictions, how
/// many rows decrypted to exactly the clear twin's scores, and the measurements.
struct EncryptedRun {
    predictions: Vec<Prediction>,
    exact_rows: usize,
    latency: Latency,
    per_sample: PerSample,
    throughput_per_s: f64,
    bytes: Bytes,
    clipped_features: u64,
    evaluation_key_ms: EvaluationKeyTimes,
    step_ms: Vec<(String, f64)>,
}

/// Noisy-simulation replicas behind `expected_label_agreement`.
pub const NOISY_REPLICAS: usize = 20;

/// Rows in the throughput batch of a model that bootstraps (its rows cost a bootstrap per
/// neuron each, and one row at a time already uses every core).
pub const BOOTSTRAPPED_BATCH_ROWS: usize = 64;

/// Where inference runs: a server in this process, or the service at a URL.
enum Backend {
    Local(Box<Server>),
    Remote { service: RemoteServer, name: String },
}

impl Backend {
    fn infer(&self, ct: &EncryptedInput) -> Result<(EncryptedOutput, Vec<StepTiming>)> {
        match self {
            Backend::Local(server) => server.infer_profiled(ct),
            Backend::Remote { service, name } => Ok((service.predict(name, ct)?, Vec::new())),
        }
    }

    fn infer_batch(&self, cts: &[EncryptedInput]) -> Result<Vec<EncryptedOutput>> {
        match self {
            Backend::Local(server) => server.infer_batch(cts).into_iter().collect(),
            Backend::Remote { service, name } => service.predict_batch(name, cts),
        }
    }
}

fn encrypted_run<T>(
    config: &EvalConfig,
    model: &CompiledModel,
    split: &Split<T>,
    n_test: usize,
    progress: &ProgressBar,
) -> Result<EncryptedRun> {
    let mut keygen_ms = Vec::new();
    let mut evaluation_key_ms = EvaluationKeyTimes::default();
    let mut evaluation_key_bytes = 0;
    let remote = match &config.server {
        Some(url) => {
            let service = RemoteServer::connect(url, &config.remote)?;
            let name = service_name(&split.name, config.model, config.output);
            let served = service.client_spec(&name)?;
            if served.model_id != model.model_id() {
                return Err(Error::Remote(format!(
                    "the service's model {name} differs from the one trained here (other data, settings or seed)"
                )));
            }
            Some((service, name))
        }
        None => None,
    };
    let (client, backend) = if model.needs_evaluation_key() {
        let t = Instant::now();
        let client = Client::new(model.client_spec())?;
        let secret_ms = ms(t);
        let t = Instant::now();
        let key = client.evaluation_key()?;
        evaluation_key_ms.generate = ms(t);
        keygen_ms.push(secret_ms + evaluation_key_ms.generate);
        let blob = key.to_bytes()?;
        evaluation_key_bytes = blob.len();
        // The server loads the key from its serialized form, as it would from the network.
        let t = Instant::now();
        let backend = match remote {
            Some((service, name)) => {
                service.upload_key(&key)?;
                Backend::Remote { service, name }
            }
            None => Backend::Local(Box::new(Server::with_evaluation_key(
                model.server_model(),
                &EvaluationKey::from_bytes(&blob)?,
            )?)),
        };
        evaluation_key_ms.expand = ms(t);
        (client, backend)
    } else {
        // Median of a few, keeping the last pair.
        let mut pair = None;
        for _ in 0..5 {
            let t = Instant::now();
            pair = Some(model.keygen()?);
            keygen_ms.push(ms(t));
        }
        let (client, server) = pair.expect("five keygens ran");
        let backend = match remote {
            Some((service, name)) => Backend::Remote { service, name },
            None => Backend::Local(Box::new(server)),
        };
        (client, backend)
    };

    let rows: Vec<Vec<f64>> = split
        .test_raw
        .axis_iter(Axis(0))
        .take(n_test)
        .map(|r| r.to_vec())
        .collect();
    progress.set_length(rows.len() as u64);
    let mut per_sample = PerSample::default();
    let mut predictions = Vec::with_capacity(rows.len());
    let mut exact_rows = 0;
    let mut bytes = Bytes {
        evaluation_key: evaluation_key_bytes,
        ..Bytes::default()
    };
    let mut step_samples: Vec<(String, Vec<f64>)> = Vec::new();
    for row in &rows {
        let t = Instant::now();
        let ct = client.encrypt(row)?;
        per_sample.encrypt_ms.push(ms(t));
        let t = Instant::now();
        let (out, steps) = backend.infer(&ct)?;
        per_sample.infer_ms.push(ms(t));
        let t = Instant::now();
        let (prediction, exact) = match model.output() {
            OutputMode::Scores => {
                let scores = client.decrypt_scores(&out)?;
                let prediction = model.decoder().decode(&scores)?;
                (prediction, scores == model.simulate(row)?)
            }
            OutputMode::Label | OutputMode::TopK(_) => {
                let labels = client.decrypt_labels(&out)?;
                let clear: Vec<usize> = model.simulate(row)?.iter().map(|&l| l as usize).collect();
                (model.decoder().decode_label(labels[0])?, labels == clear)
            }
        };
        per_sample.decrypt_ms.push(ms(t));
        exact_rows += usize::from(exact);
        predictions.push(prediction);
        push_steps(&mut step_samples, steps);
        if bytes.input_ciphertext == 0 {
            bytes.input_ciphertext = ct.to_bytes()?.len();
            bytes.output_ciphertext = out.to_bytes()?.len();
        }
        progress.inc(1);
    }
    let clipped_features = client.clipped_count();
    let totals: Vec<f64> = (0..rows.len())
        .map(|i| per_sample.encrypt_ms[i] + per_sample.infer_ms[i] + per_sample.decrypt_ms[i])
        .collect();
    let latency = Latency {
        keygen: median(&keygen_ms),
        encrypt: median(&per_sample.encrypt_ms),
        infer: median(&per_sample.infer_ms),
        decrypt: median(&per_sample.decrypt_ms),
        total: median(&totals),
    };
    per_sample.total_ms = totals;

    // Batch: encrypt, infer and decrypt rows spread over all cores.
    let batch_rows = if model.needs_evaluation_key() {
        &rows[..rows.len().min(BOOTSTRAPPED_BATCH_ROWS)]
    } else {
        &rows[..]
    };
    let t = Instant::now();
    let cts: Vec<EncryptedInput> = batch_rows
        .par_iter()
        .map(|row| client.encrypt(row))
        .collect::<Result<_>>()?;
    let outs = backend.infer_batch(&cts)?;
    let batch = outs
        .par_iter()
        .map(|out| client.decrypt(out))
        .collect::<Result<Vec<Prediction>>>()?;
    let batch_s = t.elapsed().as_secs_f64();
    // Leveled results are exact, so the batch must reproduce them; bootstrapped ones carry
    // fresh noise each run.
    if !model.needs_evaluation_key() && batch != predictions {
        return Err(Error::Other(
            "batch and one-at-a-time encrypted predictions differ".into(),
        ));
    }
    Ok(EncryptedRun {
        predictions,
        exact_rows,
        latency,
        per_sample,
        throughput_per_s: batch_rows.len() as f64 / batch_s.max(1e-9),
        bytes,
        clipped_features,
        evaluation_key_ms,
        step_ms: step_samples
            .into_iter()
            .map(|(name, v)| (name, median(&v)))
            .collect(),
    })
}

fn report_base<T>(
    config: &EvalConfig,
    split: &Split<T>,
    model: &CompiledModel,
    task: &str,
    n_test: usize,
    train_ms: f64,
) -> EvalReport {
    EvalReport {
        dataset: split.name.clone(),
        model: config.model.name().into(),
        task: task.into(),
        n_train: split.train.records().nrows(),
        n_test,
        n_features: split.n_features(),
        n_classes: (!split.classes.is_empty()).then_some(split.classes.len()),
        params: model.plan().params.describe(),
        bits: model.quantization().input_bits,
        seed: config.seed,
        test_fraction: config.test_fraction,
        accuracy: None,
        agreement: None,
        r2: None,
        deviance: None,
        d2: None,
        max_abs_error: None,
        latency_ms: Latency::default(),
        latency_p90_ms: 0.0,
        throughput_per_s: 0.0,
        bytes: Bytes::default(),
        train_ms,
        clipped_features: 0,
        exact_scores: false,
        architecture: model.architecture().to_string(),
        pbs_per_sample: model.bootstraps(),
        output: model.output().to_string(),
        label: model.label_head().map(|h| LabelFigures {
            labels: h.top,
            bootstraps: h.bootstraps(),
            sequential_bootstraps: h.sequential_bootstraps(),
            scales: h.levels.len(),
            failure_probability: h.failure_probability(),
            sanitization_distance: h
                .sanitization_distance(&model.plan().params)
                .unwrap_or(f64::NAN),
        }),
        evaluation_key_ms: EvaluationKeyTimes::default(),
        noise: None,
        step_ms: Vec::new(),
        constant_features: split.constant_features.clone(),
        warnings: data::extreme_values(&split.train_raw, &split.feature_names),
        per_sample: PerSample::default(),
    }
}

/// A warning when the quantized model's metric (accuracy or R²) falls more than
/// [`QUANTIZATION_WARNING_POINTS`] points below the plaintext model's.
fn quantization_warning(metric: &str, plain: f64, quantized: f64) -> Option<String> {
    let show = |x: f64| {
        if metric == "accuracy" {
            format!("{:.1}%", 100.0 * x)
        } else {
            format!("{x:.4}")
        }
    };
    (quantized < plain - QUANTIZATION_WARNING_POINTS / 100.0).then(|| {
        format!(
            "quantized {metric} {} is {:.1} points below plaintext {}: extreme values in training, or too few bits? Try more --bits, or check the data for glitch values",
            show(quantized),
            100.0 * (plain - quantized),
            show(plain)
        )
    })
}

/// Points of accuracy (or R² × 100) the quantized model may lose before a run warns.
pub const QUANTIZATION_WARNING_POINTS: f64 = 2.0;

fn n_test_rows(limit: Option<usize>, available: usize) -> Result<usize> {
    match limit {
        Some(0) => Err(Error::Input("--limit must be at least 1".into())),
        Some(l) => Ok(l.min(available)),
        None => Ok(available),
    }
}

fn finish<T>(
    report: &mut EvalReport,
    run: EncryptedRun,
    model: &CompiledModel,
    split: &Split<T>,
) -> Result<()> {
    let n = run.predictions.len();
    if model.program().lookup_layers().next().is_some() {
        let noise = model.noise()?;
        let mut expected = 0.0;
        for row in split.test_raw.axis_iter(Axis(0)).take(n) {
            expected += model
                .expected_lookup_mismatches(&row.to_vec())?
                .iter()
                .sum::<f64>();
        }
        let rows: Vec<Vec<f64>> = split
            .test_raw
            .axis_iter(Axis(0))
            .take(n)
            .map(|r| r.to_vec())
            .collect();
        let replicas = noisy_label_agreement(model, &rows, NOISY_REPLICAS, 1)?;
        report.noise = Some(NoiseFigures {
            lookup_sigma_positions: noise.lookup_sigma_positions,
            expected_lookup_mismatches: expected / n.max(1) as f64,
            expected_label_agreement: replicas.iter().sum::<f64>() / replicas.len() as f64,
            score_sigma: noise.score_sigma,
            exact_score_rows: fraction(run.exact_rows, n),
        });
    }
    report.latency_ms = run.latency;
    report.latency_p90_ms = percentile(&run.per_sample.total_ms, 0.9);
    report.throughput_per_s = run.throughput_per_s;
    report.bytes = run.bytes;
    report.clipped_features = run.clipped_features;
    report.exact_scores = run.exact_rows == n;
    report.per_sample = run.per_sample;
    report.evaluation_key_ms = run.evaluation_key_ms;
    report.step_ms = run.step_ms;
    Ok(())
}

fn predict_classes<T>(model: &CompiledModel, split: &Split<T>, n: usize) -> Result<Vec<usize>> {
    split
        .test_raw
        .axis_iter(Axis(0))
        .take(n)
        .map(|r| {
            let p = model.predict_simulated(&r.to_vec())?;
            Ok(p.class_index().unwrap_or(usize::MAX))
        })
        .collect()
}

/// Options of an imported model: linear models and networks at `quantization`; trees take the
/// fewest exact bits unless 2 to 5 are asked (see `compiler::imported`).
fn imported_options(config: &EvalConfig) -> Options {
    Options {
        quantization: Some(config.quantization),
        output: config.output,
    }
}

/// A regression trained and compiled here.
struct BuiltRegression {
    model: CompiledModel,
    /// The float model's predictions on every test row, in target units.
    plain: Vec<f64>,
    train_ms: f64,
    warnings: Vec<String>,
    /// The Tweedie power of a GLM (its deviance is reported).
    power: Option<f64>,
}

/// Trains and compiles the configured regression family on a split (what `eval` and `export`
/// run).
fn fit_regression(config: &EvalConfig, split: &Split<f64>) -> Result<BuiltRegression> {
    let t = Instant::now();
    let scaled = split.test.records().to_owned();
    let options = Options {
        quantization: Some(config.quantization),
        output: config.output,
    };
    let penalized = match config.model {
        ModelKind::Ridge => Some(PenalizedParams::ridge()),
        ModelKind::Lasso => Some(PenalizedParams::lasso()),
        ModelKind::ElasticNet => Some(PenalizedParams::elastic_net()),
        _ => None,
    };
    // A fitted family's compiled model, float predictions, training time and GLM power.
    let built = |model, plain, train_ms, power| BuiltRegression {
        model,
        plain,
        train_ms,
        warnings: Vec::new(),
        power,
    };
    if let Some(params) = penalized {
        let fitted = params.fit(split)?;
        let train_ms = ms(t);
        let plain = fitted.predict(&scaled).to_vec();
        return Ok(built(
            compile(&fitted, split, options)?,
            plain,
            train_ms,
            None,
        ));
    }
    if let Some(params) = config.model.glm() {
        let fitted = params.fit(split)?;
        let train_ms = ms(t);
        let plain = fitted.predict(&scaled).to_vec();
        let power = Some(params.power());
        return Ok(built(
            compile(&fitted, split, options)?,
            plain,
            train_ms,
            power,
        ));
    }
    let ensemble = match config.model {
        ModelKind::TreeRegressor => Some(
            config
                .regression_trees
                .trees(1)
                .seed(config.seed)
                .fit(split)?,
        ),
        ModelKind::ForestRegressor => Some(config.regression_trees.seed(config.seed).fit(split)?),
        ModelKind::GbdtRegressor => Some(config.gbdt.seed(config.seed).fit_regression(split)?),
        _ => None,
    };
    if let Some(fitted) = ensemble {
        let train_ms = ms(t);
        let plain = fitted.predict_values(&split.test_rows())?;
        return Ok(built(
            compile(&fitted, split, options)?,
            plain,
            train_ms,
            None,
        ));
    }
    if config.model != ModelKind::Linear {
        return Err(Error::Input(format!(
            "{} is not a regression",
            config.model.name()
        )));
    }
    let fitted = LinearParams.fit(split)?;
    let train_ms = ms(t);
    let mut warnings = Vec::new();
    if let train::LinearSolver::Ridge { alpha } = fitted.solver {
        warnings.push(format!(
            "least squares has no unique solution here (collinear features, or fewer rows than features): fitted ridge with alpha {alpha}"
        ));
    }
    Ok(BuiltRegression {
        model: compile(&fitted, split, options)?,
        plain: fitted.predict(&scaled).to_vec(),
        train_ms,
        warnings,
        power: None,
    })
}

/// A regression trained here, or an imported regression (`imported`).
fn run_linear(
    config: &EvalConfig,
    table: &Table,
    imported: Option<&Imported>,
    progress: &ProgressBar,
) -> Result<EvalReport> {
    let split = table.split_regression(config.test_fraction, config.seed)?;
    let n_test = n_test_rows(config.limit, split.test_raw.nrows())?;
    let (model, plain, train_ms, warnings, power) = if let Some(i) = imported {
        // An imported regression: its float model gives the plain predictions.
        let model = compile(&i.model, &split, imported_options(config))?;
        let plain = split
            .test_raw
            .axis_iter(Axis(0))
            .take(n_test)
            .map(|r| Ok(i.model.raw_scores(&r.to_vec())?[0]))
            .collect::<Result<Vec<f64>>>()?;
        (model, plain, i.ms, Vec::new(), None)
    } else {
        let built = fit_regression(config, &split)?;
        let plain = built.plain.into_iter().take(n_test).collect();
        (
            built.model,
            plain,
            built.train_ms,
            built.warnings,
            built.power,
        )
    };
    let truth: Vec<f64> = split.test.targets().iter().take(n_test).copied().collect();
    let quantized: Vec<f64> = split
        .test_raw
        .axis_iter(Axis(0))
        .take(n_test)
        .map(|r| {
            let p = model.predict_simulated(&r.to_vec())?;
            Ok(p.value().unwrap_or(f64::NAN))
        })
        .collect::<Result<_>>()?;
    let run = encrypted_run(config, &model, &split, n_test, progress)?;
    let encrypted: Vec<f64> = run
        .predictions
        .iter()
        .map(|p| p.value().unwrap_or(f64::NAN))
        .collect();
    let max_err = |a: &[f64], b: &[f64]| {
        a.iter()
            .zip(b)
            .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
    };
    let mut report = report_base(config, &split, &model, "regression", n_test, train_ms);
    report.r2 = Some(Triple {
        plain: r2(&truth, &plain),
        quantized: r2(&truth, &quantized),
        encrypted: r2(&truth, &encrypted),
    });
    if let Some(power) = power {
        let triple = |f: fn(&[f64], &[f64], f64) -> f64| Triple {
            plain: f(&truth, &plain, power),
            quantized: f(&truth, &quantized, power),
            encrypted: f(&truth, &encrypted, power),
        };
        report.deviance = Some(triple(mean_tweedie_deviance));
        report.d2 = Some(triple(d2_tweedie));
    }
    report.warnings.extend(warnings);
    report.warnings.extend(quantization_warning(
        "R²",
        r2(&truth, &plain),
        r2(&truth, &quantized),
    ));
    report.max_abs_error = Some(crate::report::ErrorPair {
        encrypted_vs_quantized: max_err(&encrypted, &quantized),
        encrypted_vs_plain: max_err(&encrypted, &plain),
    });
    finish(&mut report, run, &model, &split)?;
    Ok(report)
}

/// Accuracy and agreement of a classifier compiled to a program: `plain` holds the float
/// model's labels for the test rows.
fn classifier_report(
    config: &EvalConfig,
    split: &Split<usize>,
    built: BuiltClassifier,
    progress: &ProgressBar,
) -> Result<EvalReport> {
    let BuiltClassifier {
        model,
        plain,
        train_ms,
    } = built;
    let model = &model;
    let n_test = n_test_rows(config.limit, split.test_raw.nrows())?;
    let plain: Vec<usize> = plain.into_iter().take(n_test).collect();
    let truth: Vec<usize> = split.test.targets().iter().take(n_test).copied().collect();
    let quantized = predict_classes(model, split, n_test)?;
    let run = encrypted_run(config, model, split, n_test, progress)?;
    let encrypted: Vec<usize> = run
        .predictions
        .iter()
        .map(|p| p.class_index().unwrap_or(usize::MAX))
        .collect();
    let hits = |pred: &[usize], reference: &[usize]| {
        fraction(
            pred.iter().zip(reference).filter(|(a, b)| a == b).count(),
            n_test,
        )
    };
    let task = if split.classes.len() == 2 {
        "binary-classification"
    } else {
        "multiclass-classification"
    };
    let mut report = report_base(config, split, model, task, n_test, train_ms);
    report.accuracy = Some(Triple {
        plain: hits(&plain, &truth),
        quantized: hits(&quantized, &truth),
        encrypted: hits(&encrypted, &truth),
    });
    report.warnings.extend(quantization_warning(
        "accuracy",
        hits(&plain, &truth),
        hits(&quantized, &truth),
    ));
    report.agreement = Some(Agreement {
        encrypted_vs_quantized: hits(&encrypted, &quantized),
        encrypted_vs_plain: hits(&encrypted, &plain),
        quantized_vs_plain: hits(&quantized, &plain),
    });
    finish(&mut report, run, model, split)?;
    Ok(report)
}
