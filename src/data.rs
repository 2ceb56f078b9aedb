//! Data: CSV files to feature matrices, the deterministic (stratified) train/test split, and
//! the standard scaler fitted on the training part only.

use std::path::Path;

use linfa::Dataset;
use ndarray::Ix1;
use ndarray::{Array1, Array2, ArrayView1, Axis};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Largest CSV the loader reads, so a wrong path cannot exhaust memory.
pub const MAX_CSV_BYTES: u64 = 256 * 1024 * 1024;

/// A numeric table read from a CSV: features and the `target` column (its last column).
#[derive(Debug, Clone)]
pub struct Table {
    /// The file stem, used in reports.
    pub name: String,
    pub feature_names: Vec<String>,
    /// One row per sample.
    pub features: Array2<f64>,
    pub target: Array1<f64>,
}

/// The breast-cancer CSV shipped in `data/`, built in so `fhe-ml demo` runs from anywhere.
pub const BREAST_CANCER_CSV: &str = include_str!("../data/breast_cancer.csv");
/// The digits CSV, built in for the service's default models.
pub const DIGITS_CSV: &str = include_str!("../data/digits.csv");

/// Reads a CSV with a header row whose last column is `target`. Every other cell must be a
/// finite number; errors name the file, line and column.
pub fn load_csv(path: impl AsRef<Path>) -> Result<Table> {
    let path = path.as_ref();
    let meta = std::fs::metadata(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.len() > MAX_CSV_BYTES {
        return Err(Error::Csv {
            path: path.to_path_buf(),
            message: format!(
                "file is {} bytes, larger than the {MAX_CSV_BYTES} byte limit",
                meta.len()
            ),
        });
    }
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path
        .file_stem()
        .map_or_else(|| "data".into(), |s| s.to_string_lossy().into_owned());
    parse_csv(file, &name, path)
}

/// Parses CSV text already in memory (`name` names it in reports and errors).
pub fn parse_csv_str(text: &str, name: &str) -> Result<Table> {
    parse_csv(text.as_bytes(), name, Path::new(name))
}

/// A CSV reader (header row, trimmed cells, ragged rows reported by the caller) and its header.
fn csv_reader<R: std::io::Read>(
    input: R,
) -> std::result::Result<(csv::Reader<R>, Vec<String>), String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let header = reader
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(str::to_string)
        .collect();
    Ok((reader, header))
}

fn parse_csv(input: impl std::io::Read, name: &str, path: &Path) -> Result<Table> {
    let csv_err = |message: String| Error::Csv {
        path: path.to_path_buf(),
        message,
    };
    let (mut reader, header) = csv_reader(input).map_err(csv_err)?;
    if header.len() < 2 || header.last().map(String::as_str) != Some("target") {
        return Err(csv_err(
            "the header must name at least one feature and end with a `target` column".into(),
        ));
    }
    let width = header.len();
    let mut values = Vec::new();
    let mut target = Vec::new();
    for (row_index, record) in reader.records().enumerate() {
        let record = record.map_err(|e| csv_err(e.to_string()))?;
        let line = record
            .position()
            .map_or(row_index + 2, |p| p.line() as usize);
        if record.len() != width {
            return Err(csv_err(format!(
                "line {line}: {} cells, but the header has {width} columns",
                record.len()
            )));
        }
        for (column, cell) in record.iter().enumerate() {
            let value: f64 = cell.parse().map_err(|_| {
                csv_err(format!(
                    "line {line}, column `{}`: `{cell}` is not a number",
                    header[column]
                ))
            })?;
            if !value.is_finite() {
                return Err(csv_err(format!(
                    "line {line}, column `{}`: {cell} is not a finite number",
                    header[column]
                )));
            }
            if column + 1 == width {
                target.push(value);
            } else {
                values.push(value);
            }
        }
    }
    if target.is_empty() {
        return Err(csv_err("no data rows".into()));
    }
    let n = target.len();
    let features = Array2::from_shape_vec((n, width - 1), values)
        .map_err(|e| csv_err(format!("internal shape error: {e}")))?;
    Ok(Table {
        name: name.to_string(),
        feature_names: header[..width - 1].to_vec(),
        features,
        target: Array1::from(target),
    })
}

/// Per-feature standardization `(x - mean) / std`, fitted on training rows only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    pub mean: Vec<f64>,
    /// Standard deviations; a constant feature gets 1 so it maps to 0.
    pub std: Vec<f64>,
}

impl Scaler {
    pub fn fit(x: &Array2<f64>) -> Self {
        let mean = x.mean_axis(Axis(0)).map_or_else(Vec::new, |m| m.to_vec());
        let std = x
            .std_axis(Axis(0), 0.0)
            .iter()
            .map(|&s| if s > 1e-12 { s } else { 1.0 })
            .collect();
        Self { mean, std }
    }

    pub fn transform(&self, x: &Array2<f64>) -> Array2<f64> {
        let mut out = x.clone();
        for mut row in out.rows_mut() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (*v - self.mean[j]) / self.std[j];
            }
        }
        out
    }

    pub fn transform_row(&self, row: ArrayView1<f64>) -> Vec<f64> {
        row.iter()
            .enumerate()
            .map(|(j, v)| (v - self.mean[j]) / self.std[j])
            .collect()
    }
}

/// A train/test split: scaled linfa datasets for training and evaluation, the raw test rows a
/// client would encrypt, and the scaler (part of the compiled model, so clients send raw rows).
#[derive(Debug, Clone)]
pub struct Split<T> {
    pub name: String,
    pub feature_names: Vec<String>,
    /// Scaled training set (what linfa fits on).
    pub train: Dataset<f64, T, Ix1>,
    /// Scaled test set, aligned with `test_raw`.
    pub test: Dataset<f64, T, Ix1>,
    /// Raw (unscaled) training rows, for calibration in raw units.
    pub train_raw: Array2<f64>,
    /// Raw (unscaled) test rows: what a client holds and encrypts.
    pub test_raw: Array2<f64>,
    pub scaler: Scaler,
    /// Original label of each class index (classification only; empty for regression).
    pub classes: Vec<i64>,
    /// Rows of the table in the training and test parts, in order (other tools can then use
    /// exactly this split: `fhe-ml split`).
    pub train_index: Vec<usize>,
    pub test_index: Vec<usize>,
}

impl<T> Split<T> {
    pub fn n_features(&self) -> usize {
        self.feature_names.len()
    }
}

impl<T: Clone> Split<T> {
    /// The raw test rows, one `Vec` each: what a client encrypts.
    pub fn test_rows(&self) -> Vec<Vec<f64>> {
        self.test_raw
            .rows()
            .into_iter()
            .map(|r| r.to_vec())
            .collect()
    }

    /// The test targets (class indices for classification, values for regression).
    pub fn test_targets(&self) -> Vec<T> {
        self.test.targets().to_vec()
    }
}

impl Table {
    /// Stratified split for classification: the target must hold integers and at least two
    /// classes, each with at least two samples. Classes become indices `0..k` in label order.
    pub fn split(&self, test_fraction: f64, seed: u64) -> Result<Split<usize>> {
        check_fraction(test_fraction)?;
        let mut classes: Vec<i64> = Vec::new();
        for &t in &self.target {
            if t.fract() != 0.0 || t.abs() > 2f64.powi(53) {
                return Err(Error::Data(format!(
                    "{}: target {t} is not an integer class label (use --model linear for regression)",
                    self.name
                )));
            }
            classes.push(t as i64);
        }
        let labels = classes.clone();
        classes.sort_unstable();
        classes.dedup();
        if classes.len() < 2 {
            return Err(Error::Data(format!(
                "{}: the target holds a single class ({}); a classifier needs at least two",
                self.name, classes[0]
            )));
        }
        let index_of = |label: i64| classes.binary_search(&label).unwrap_or(0);
        let y: Vec<usize> = labels.iter().map(|&l| index_of(l)).collect();
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); classes.len()];
        for (i, &c) in y.iter().enumerate() {
            members[c].push(i);
        }
        if let Some(c) = members.iter().position(|m| m.len() < 2) {
            return Err(Error::Data(format!(
                "{}: class {} has {} sample(s); each class needs at least two to split",
                self.name,
                classes[c],
                members[c].len()
            )));
        }
        let counts = stratified_counts(&members, test_fraction);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut test = Vec::new();
        for (m, n_test) in members.iter_mut().zip(counts) {
            m.shuffle(&mut rng);
            test.extend_from_slice(&m[..n_test]);
        }
        let (train_idx, test_idx) = complement(y.len(), test);
        let y = Array1::from(y);
        Ok(self.assemble(&train_idx, &test_idx, &y, classes))
    }

    /// Seeded random split for regression (real-valued target).
    pub fn split_regression(&self, test_fraction: f64, seed: u64) -> Result<Split<f64>> {
        check_fraction(test_fraction)?;
        let n = self.target.len();
        if n < 3 {
            return Err(Error::Data(format!(
                "{}: {n} rows are too few to split",
                self.name
            )));
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let n_test = ((n as f64 * test_fraction).ceil() as usize).clamp(1, n - 2);
        order.truncate(n_test);
        let (train_idx, test_idx) = complement(n, order);
        Ok(self.assemble(&train_idx, &test_idx, &self.target, Vec::new()))
    }

    fn assemble<T: Clone>(
        &self,
        train_idx: &[usize],
        test_idx: &[usize],
        y: &Array1<T>,
        classes: Vec<i64>,
    ) -> Split<T> {
        let train_raw = self.features.select(Axis(0), train_idx);
        let test_raw = self.features.select(Axis(0), test_idx);
        let scaler = Scaler::fit(&train_raw);
        let names = self.feature_names.clone();
        let train = Dataset::new(scaler.transform(&train_raw), y.select(Axis(0), train_idx))
            .with_feature_names(names.clone());
        let test = Dataset::new(scaler.transform(&test_raw), y.select(Axis(0), test_idx))
            .with_feature_names(names);
        Split {
            name: self.name.clone(),
            feature_names: self.feature_names.clone(),
            train,
            test,
            train_raw,
            test_raw,
            scaler,
            classes,
            train_index: train_idx.to_vec(),
            test_index: test_idx.to_vec(),
        }
    }
}

/// Test rows per class: `ceil(fraction * n)` in all (as scikit-learn's `train_test_split`),
/// shared in proportion to class sizes by largest remainder, at least one test and one
/// training row per class.
fn stratified_counts(members: &[Vec<usize>], fraction: f64) -> Vec<usize> {
    let n: usize = members.iter().map(Vec::len).sum();
    let total = (fraction * n as f64).ceil() as usize;
    let exact: Vec<f64> = members.iter().map(|m| m.len() as f64 * fraction).collect();
    let mut counts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())));
    let mut missing = total.saturating_sub(counts.iter().sum());
    for &c in order.iter().cycle().take(members.len() * 2) {
        if missing == 0 {
            break;
        }
        if counts[c] + 1 < members[c].len() {
            counts[c] += 1;
            missing -= 1;
        }
    }
    for (count, m) in counts.iter_mut().zip(members) {
        *count = (*count).clamp(1, m.len() - 1);
    }
    counts
}

fn check_fraction(f: f64) -> Result<()> {
    if f.is_finite() && f > 0.0 && f < 1.0 {
        Ok(())
    } else {
        Err(Error::Data(format!(
            "test fraction must be strictly between 0 and 1, got {f}"
        )))
    }
}

/// Sorted train and test indices, given the test ones.
fn complement(n: usize, mut test: Vec<usize>) -> (Vec<usize>, Vec<usize>) {
    test.sort_unstable();
    let mut is_test = vec![false; n];
    for &i in &test {
        is_test[i] = true;
    }
    let train = (0..n).filter(|&i| !is_test[i]).collect();
    (train, test)
}

/// Reads rows to predict: a CSV with a header row and `n_features` numeric columns, or one more
/// if the last is `target` (ignored). Errors name the file, line and column.
pub fn load_csv_features(path: &Path, n_features: usize) -> Result<Vec<Vec<f64>>> {
    let csv_err = |message: String| Error::Csv {
        path: path.to_path_buf(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let meta = file.metadata().map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.len() > MAX_CSV_BYTES {
        return Err(csv_err(format!(
            "larger than the {MAX_CSV_BYTES} byte limit"
        )));
    }
    let (mut reader, header) = csv_reader(file).map_err(csv_err)?;
    let with_target =
        header.len() == n_features + 1 && header.last().is_some_and(|h| h == "target");
    if header.len() != n_features && !with_target {
        return Err(csv_err(format!(
            "{} columns, the model takes {n_features} features (plus an optional last `target`)",
            header.len()
        )));
    }
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| csv_err(e.to_string()))?;
        let line = record.position().map_or(i + 2, |p| p.line() as usize);
        if record.len() != header.len() {
            return Err(csv_err(format!(
                "line {line}: {} cells, but the header has {} columns",
                record.len(),
                header.len()
            )));
        }
        let row = record
            .iter()
            .take(n_features)
            .enumerate()
            .map(|(column, cell)| {
                cell.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| {
                        csv_err(format!(
                            "line {line}, column `{}`: `{cell}` is not a finite number",
                            header[column]
                        ))
                    })
            })
            .collect::<Result<Vec<f64>>>()?;
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(csv_err("no data rows".into()));
    }
    Ok(rows)
}

/// Checks a raw row a client is about to encrypt: length and finiteness.
pub fn check_row(row: &[f64], n_features: usize) -> Result<()> {
    if row.len() != n_features {
        return Err(Error::Input(format!(
            "a row has {} features, the model expects {n_features}",
            row.len()
        )));
    }
    if let Some(j) = row.iter().position(|v| !v.is_finite()) {
        return Err(Error::Input(format!(
            "feature {j} is {}, not a finite number",
            row[j]
        )));
    }
    Ok(())
}
