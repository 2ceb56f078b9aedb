//! Data: CSV files to feature matrices (delimiter detection, numeric and categorical columns,
//! one-hot encoding), the input schema that travels with a model so clients encode rows by
//! column name, the deterministic (stratified) train/test split, and the standard scaler fitted
//! on the training part only.

use std::collections::BTreeSet;
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

/// Most categories a text column may hold: more looks like an identifier or free text, which
/// one-hot encoding would turn into that many features.
pub const MAX_CATEGORIES: usize = 64;

/// The name of the column that holds what the model predicts.
pub const TARGET: &str = "target";

/// Delimiters [`detect_delimiter`] recognises, in order of preference on a tie.
pub const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// How a raw input column becomes features.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColumnKind {
    /// One feature: the cell's number.
    Numeric,
    /// One feature per category (one-hot, `name=category`), in this order (sorted). A category
    /// not seen in training is refused (`Error::Input`) rather than guessed.
    Categorical {
        /// The distinct values seen in training, sorted: one feature each.
        categories: Vec<String>,
    },
}

/// One raw input column of a table (the `target` column excluded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// The header name, as in the CSV (and the client's records).
    pub name: String,
    /// Numeric, or categorical with its categories.
    pub kind: ColumnKind,
}

/// The raw input columns a model reads, in training order, and how each expands to features.
/// It travels in the client spec, so a client encodes rows by column name: any column order,
/// extra columns ignored, a missing column refused by name.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Schema {
    /// The input columns, in training order (the order features are laid out in).
    pub columns: Vec<Column>,
}

/// One cell of a named row: a number, or text (a category, or a number written as text).
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// A number, for a numeric column.
    Number(f64),
    /// Text: a category, or a number to parse.
    Text(String),
}

impl From<f64> for Cell {
    fn from(v: f64) -> Self {
        Cell::Number(v)
    }
}

impl From<&str> for Cell {
    fn from(v: &str) -> Self {
        Cell::Text(v.to_string())
    }
}

impl From<String> for Cell {
    fn from(v: String) -> Self {
        Cell::Text(v)
    }
}

/// A row with named cells, as a user holds it: `Record::new().with("age", 61.0).with("smoker",
/// "yes")`. [`Schema::encode`] turns it into the model's feature row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Record {
    /// `(column name, cell)` pairs, in any order.
    pub cells: Vec<(String, Cell)>,
}

impl Record {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// The record with one more named cell.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<Cell>) -> Self {
        self.cells.push((name.into(), value.into()));
        self
    }
}

impl Schema {
    /// A schema of numeric columns with these names.
    pub fn numeric(names: &[String]) -> Self {
        Self {
            columns: names
                .iter()
                .map(|n| Column {
                    name: n.clone(),
                    kind: ColumnKind::Numeric,
                })
                .collect(),
        }
    }

    /// Feature names after one-hot encoding: a numeric column keeps its name, a categorical
    /// one gives `name=category` per category.
    pub fn feature_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for c in &self.columns {
            match &c.kind {
                ColumnKind::Numeric => names.push(c.name.clone()),
                ColumnKind::Categorical { categories } => {
                    names.extend(categories.iter().map(|k| format!("{}={k}", c.name)))
                }
            }
        }
        names
    }

    /// For each categorical column, the feature indices of its one-hot block.
    pub fn categorical_blocks(&self) -> Vec<std::ops::Range<usize>> {
        let mut blocks = Vec::new();
        let mut at = 0;
        for c in &self.columns {
            match &c.kind {
                ColumnKind::Numeric => at += 1,
                ColumnKind::Categorical { categories } => {
                    blocks.push(at..at + categories.len());
                    at += categories.len();
                }
            }
        }
        blocks
    }

    /// Number of features after encoding.
    pub fn n_features(&self) -> usize {
        self.columns
            .iter()
            .map(|c| match &c.kind {
                ColumnKind::Numeric => 1,
                ColumnKind::Categorical { categories } => categories.len(),
            })
            .sum()
    }

    /// Checks a schema read from a blob: distinct non-empty names, categories distinct and
    /// non-empty.
    ///
    /// # Errors
    ///
    /// `Error::Input` if a column name is empty or repeated, a categorical column has no or
    /// repeated categories, or two encoded features would share a name.
    pub fn validate(&self) -> Result<()> {
        let mut seen = BTreeSet::new();
        for c in &self.columns {
            if c.name.is_empty() || !seen.insert(c.name.as_str()) {
                return Err(Error::Input(format!(
                    "schema column names must be distinct and non-empty ({:?})",
                    c.name
                )));
            }
            if let ColumnKind::Categorical { categories } = &c.kind {
                let distinct: BTreeSet<_> = categories.iter().collect();
                if categories.is_empty() || distinct.len() != categories.len() {
                    return Err(Error::Input(format!(
                        "column `{}`: categories must be distinct and at least one",
                        c.name
                    )));
                }
            }
        }
        let mut features = BTreeSet::new();
        for name in self.feature_names() {
            if !features.insert(name.clone()) {
                return Err(Error::Input(format!(
                    "two features would be named `{name}` (a column of that name, and a category of another column): rename one"
                )));
            }
        }
        Ok(())
    }

    /// Where each of this schema's columns sits in a header (`header[i]` names cell `i`), and
    /// which header columns the model does not read.
    ///
    /// # Errors
    ///
    /// `Error::Input` naming every schema column missing from `header`.
    pub fn match_header(&self, header: &[String]) -> Result<HeaderMatch> {
        let mut positions = Vec::with_capacity(self.columns.len());
        let mut missing = Vec::new();
        for c in &self.columns {
            match header.iter().position(|h| h == &c.name) {
                Some(p) => positions.push(p),
                None => missing.push(c.name.clone()),
            }
        }
        if !missing.is_empty() {
            return Err(Error::Input(format!(
                "missing column{} {} (the model reads {}; found {})",
                if missing.len() > 1 { "s" } else { "" },
                quote_list(&missing),
                quote_list(
                    &self
                        .columns
                        .iter()
                        .map(|c| c.name.clone())
                        .collect::<Vec<_>>()
                ),
                quote_list(header),
            )));
        }
        let ignored = header
            .iter()
            .enumerate()
            .filter(|(i, _)| !positions.contains(i))
            .map(|(_, h)| h.clone())
            .collect();
        Ok(HeaderMatch {
            positions,
            ignored,
            width: header.len(),
        })
    }

    /// The feature row of a named record (any order; extra names ignored), of
    /// [`Schema::n_features`] values.
    ///
    /// # Errors
    ///
    /// `Error::Input` naming a missing column, an empty, non-numeric or non-finite number, or
    /// a category not seen in training.
    ///
    /// ```
    /// use fhe_ml::data::{parse_csv_str, Record};
    /// # fn main() -> fhe_ml::Result<()> {
    /// let table = parse_csv_str("age,smoker,target\n61,yes,1\n35,no,0\n52,no,1\n", "t")?;
    /// assert_eq!(table.feature_names, ["age", "smoker=no", "smoker=yes"]);
    /// let row = table.schema.encode(&Record::new().with("smoker", "yes").with("age", 40.0))?;
    /// assert_eq!(row, [40.0, 0.0, 1.0]);
    /// assert!(table.schema.encode(&Record::new().with("age", 40.0)).is_err()); // no `smoker`
    /// # Ok(()) }
    /// ```
    pub fn encode(&self, record: &Record) -> Result<Vec<f64>> {
        let mut out = Vec::with_capacity(self.n_features());
        for c in &self.columns {
            let cell = record
                .cells
                .iter()
                .find(|(n, _)| n == &c.name)
                .map(|(_, v)| v)
                .ok_or_else(|| Error::Input(format!("the record has no column `{}`", c.name)))?;
            match cell {
                Cell::Number(v) => encode_cell(c, &v.to_string(), Some(*v), false, &mut out)?,
                Cell::Text(t) => encode_cell(c, t, None, false, &mut out)?,
            }
        }
        Ok(out)
    }
}

/// A header matched against a schema ([`Schema::match_header`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMatch {
    /// For each schema column, its position in the header.
    positions: Vec<usize>,
    /// Header columns the model does not read (a `target`, an id, ...).
    pub ignored: Vec<String>,
    width: usize,
}

impl HeaderMatch {
    /// The feature row of one line's cells (`cells.len()` = the header's width).
    /// `decimal_comma` accepts `1,5` for 1.5 (files delimited by `;` or tab). The row has
    /// [`Schema::n_features`] values.
    ///
    /// # Errors
    ///
    /// `Error::Input` if `cells` does not have the header's width, or a cell the model reads is
    /// empty, not a finite number, or an unknown category.
    pub fn encode(&self, schema: &Schema, cells: &[&str], decimal_comma: bool) -> Result<Vec<f64>> {
        if cells.len() != self.width {
            return Err(Error::Input(format!(
                "{} cells, but the header has {} columns",
                cells.len(),
                self.width
            )));
        }
        let mut out = Vec::with_capacity(schema.n_features());
        for (c, &p) in schema.columns.iter().zip(&self.positions) {
            encode_cell(c, cells[p], None, decimal_comma, &mut out)?;
        }
        Ok(out)
    }
}

/// Appends the features of one cell of column `c`.
fn encode_cell(
    c: &Column,
    text: &str,
    number: Option<f64>,
    decimal_comma: bool,
    out: &mut Vec<f64>,
) -> Result<()> {
    let text = text.trim();
    match &c.kind {
        ColumnKind::Numeric => {
            let v = number.or_else(|| parse_number(text, decimal_comma));
            match v {
                Some(v) if v.is_finite() => out.push(v),
                _ if text.is_empty() => {
                    return Err(Error::Input(format!(
                        "column `{}` is empty (missing values are not supported)",
                        c.name
                    )))
                }
                _ => {
                    return Err(Error::Input(format!(
                        "column `{}`: `{text}` is not a finite number",
                        c.name
                    )))
                }
            }
        }
        ColumnKind::Categorical { categories } => {
            let at = categories.iter().position(|k| k == text).ok_or_else(|| {
                Error::Input(format!(
                    "column `{}`: category `{text}` was not seen in training (known: {})",
                    c.name,
                    quote_list(categories)
                ))
            })?;
            out.extend((0..categories.len()).map(|i| f64::from(u8::from(i == at))));
        }
    }
    Ok(())
}

/// `a`, `b` and `c`: names for an error message (at most 12, then a count).
fn quote_list(names: &[String]) -> String {
    let mut shown: Vec<String> = names.iter().take(12).map(|n| format!("`{n}`")).collect();
    if names.len() > 12 {
        shown.push(format!("{} more", names.len() - 12));
    }
    shown.join(", ")
}

/// A number as people write it in CSV files: Rust's float syntax, and with `decimal_comma`
/// also `1,5` (one comma, digits around it) for 1.5. `None` for anything else.
pub fn parse_number(cell: &str, decimal_comma: bool) -> Option<f64> {
    let cell = cell.trim();
    if let Ok(v) = cell.parse::<f64>() {
        return Some(v);
    }
    if decimal_comma && cell.matches(',').count() == 1 {
        let (a, b) = cell.split_once(',')?;
        let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
        let a_digits = a.strip_prefix(['-', '+']).unwrap_or(a);
        if digits(a_digits) && b.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            return format!("{a}.{b}").parse().ok();
        }
    }
    None
}

/// The delimiter of a CSV's first line: whichever of `,` `;` tab `|` occurs most often outside
/// double quotes (`,` when none does).
///
/// ```
/// use fhe_ml::data::detect_delimiter;
/// assert_eq!(detect_delimiter(b"age;\"city, state\";target\n"), b';');
/// assert_eq!(detect_delimiter(b"a,b,target"), b',');
/// ```
pub fn detect_delimiter(text: &[u8]) -> u8 {
    let line = text.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let mut counts = [0usize; DELIMITERS.len()];
    let mut quoted = false;
    for &b in line {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted {
            if let Some(i) = DELIMITERS.iter().position(|&d| d == b) {
                counts[i] += 1;
            }
        }
    }
    let best = (0..DELIMITERS.len()).fold(0, |b, i| if counts[i] > counts[b] { i } else { b });
    DELIMITERS[best]
}

/// How to read a CSV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CsvOptions {
    /// The delimiter; `None` detects it from the header line ([`detect_delimiter`]).
    pub delimiter: Option<u8>,
}

impl CsvOptions {
    /// Options with this delimiter (`,`, `;`, tab, `|` or any other single byte).
    pub fn delimiter(delimiter: u8) -> Self {
        Self {
            delimiter: Some(delimiter),
        }
    }
}

/// A delimiter as a user writes it: one character, or `tab` / `\t`.
///
/// # Errors
///
/// `Error::Input` for anything but one ASCII character or `tab`.
pub fn parse_delimiter(s: &str) -> Result<u8> {
    match s {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        _ if s.len() == 1 && s.is_ascii() => Ok(s.as_bytes()[0]),
        _ => Err(Error::Input(format!(
            "a delimiter is one ASCII character or `tab`, got {s:?}"
        ))),
    }
}

fn delimiter_name(d: u8) -> String {
    match d {
        b'\t' => "tab".into(),
        _ => format!("`{}`", d as char),
    }
}

/// The text of a CSV file, refused past [`MAX_CSV_BYTES`].
fn read_limited(path: &Path) -> Result<Vec<u8>> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > MAX_CSV_BYTES {
        return Err(Error::Csv {
            path: path.to_path_buf(),
            message: format!(
                "file is {} bytes, larger than the {MAX_CSV_BYTES} byte limit",
                meta.len()
            ),
        });
    }
    std::fs::read(path).map_err(io)
}

/// The cells of a CSV, as text: its header and rows (ragged rows refused, naming the line),
/// and the delimiter used.
struct RawCsv {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    /// 1-based line of each row in the file.
    lines: Vec<usize>,
    delimiter: u8,
}

impl RawCsv {
    fn read(text: &[u8], options: CsvOptions) -> std::result::Result<Self, String> {
        let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
        let delimiter = options.delimiter.unwrap_or_else(|| detect_delimiter(text));
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .delimiter(delimiter)
            .trim(csv::Trim::All)
            .from_reader(text);
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| e.to_string())?
            .iter()
            .map(str::to_string)
            .collect();
        if header.iter().all(String::is_empty) {
            return Err("the file is empty: it needs a header row".into());
        }
        let mut rows = Vec::new();
        let mut lines = Vec::new();
        for (i, record) in reader.records().enumerate() {
            let record = record.map_err(|e| e.to_string())?;
            let line = record.position().map_or(i + 2, |p| p.line() as usize);
            if record.iter().all(str::is_empty) && record.len() <= 1 {
                continue; // a blank line
            }
            if record.len() != header.len() {
                return Err(format!(
                    "line {line}: {} cells, but the header has {} columns",
                    record.len(),
                    header.len()
                ));
            }
            rows.push(record.iter().map(str::to_string).collect());
            lines.push(line);
        }
        Ok(Self {
            header,
            rows,
            lines,
            delimiter,
        })
    }

    /// `1,5` reads as 1.5 in `;`- and tab-delimited files (spreadsheets in locales with a
    /// decimal comma write those), never in `,` or `|` files.
    fn decimal_comma(&self) -> bool {
        self.delimiter == b';' || self.delimiter == b'\t'
    }

    /// A hint when the header looks delimited by something else than the delimiter used.
    fn other_delimiter_hint(&self) -> String {
        if self.header.len() != 1 {
            return String::new();
        }
        let other = detect_delimiter(self.header[0].as_bytes());
        if other != self.delimiter && self.header[0].as_bytes().contains(&other) {
            format!(
                "; the file seems delimited by {} rather than {} (--delimiter)",
                delimiter_name(other),
                delimiter_name(self.delimiter)
            )
        } else {
            String::new()
        }
    }
}

/// A table read from a CSV: its input schema, the encoded feature matrix and the `target`.
#[derive(Debug, Clone)]
pub struct Table {
    /// The file stem, used in reports.
    pub name: String,
    /// The raw input columns and how they expand to features.
    pub schema: Schema,
    /// Feature names after encoding (`schema.feature_names()`).
    pub feature_names: Vec<String>,
    /// `n_rows × n_features`, one row per sample.
    pub features: Array2<f64>,
    /// `n_rows` values of the `target` column.
    pub target: Array1<f64>,
}

/// The breast-cancer CSV shipped in `data/`, built in so `fhe-ml demo` runs from anywhere.
pub const BREAST_CANCER_CSV: &str = include_str!("../data/breast_cancer.csv");
/// The digits CSV, built in for the service's default models.
pub const DIGITS_CSV: &str = include_str!("../data/digits.csv");

/// Reads a CSV whose header names a `target` column (anywhere; usually last); the delimiter
/// is detected. See [`load_csv_with`].
///
/// # Errors
///
/// As [`load_csv_with`]: `Error::Io` if the file cannot be read, `Error::Csv` for its size or
/// content.
pub fn load_csv(path: impl AsRef<Path>) -> Result<Table> {
    load_csv_with(path, CsvOptions::default())
}

/// Reads a CSV with a header row, one column of which is `target` (numeric). Other columns are
/// features: numeric columns as they are (a decimal comma is read in `;`- and tab-delimited
/// files), text columns one-hot encoded by category. Errors (`Error::Csv`) name the file, line
/// and column.
///
/// # Errors
///
/// `Error::Io` if the file cannot be read. `Error::Csv` if it is over [`MAX_CSV_BYTES`] or
/// malformed: a missing `target`, duplicate or empty names, ragged rows, empty cells, a stray
/// word in a numeric column, a non-finite number, a text column with more than
/// [`MAX_CATEGORIES`] categories, no rows.
pub fn load_csv_with(path: impl AsRef<Path>, options: CsvOptions) -> Result<Table> {
    let path = path.as_ref();
    let text = read_limited(path)?;
    let name = path
        .file_stem()
        .map_or_else(|| "data".into(), |s| s.to_string_lossy().into_owned());
    parse_csv(&text, &name, path, options)
}

/// Parses CSV text already in memory (`name` names it in reports and errors); the
/// delimiter is detected.
///
/// # Errors
///
/// `Error::Csv` (its path is `name`) for malformed content, as in [`load_csv_with`].
pub fn parse_csv_str(text: &str, name: &str) -> Result<Table> {
    parse_csv(
        text.as_bytes(),
        name,
        Path::new(name),
        CsvOptions::default(),
    )
}

fn parse_csv(text: &[u8], name: &str, path: &Path, options: CsvOptions) -> Result<Table> {
    let csv_err = |message: String| Error::Csv {
        path: path.to_path_buf(),
        message,
    };
    let raw = RawCsv::read(text, options).map_err(csv_err)?;
    let header = &raw.header;
    let Some(target_at) = header.iter().position(|h| h == TARGET) else {
        return Err(csv_err(format!(
            "no `{TARGET}` column: the header is {}{}",
            quote_list(header),
            raw.other_delimiter_hint()
        )));
    };
    if header.len() < 2 {
        return Err(csv_err(format!(
            "the header names no feature besides `{TARGET}`"
        )));
    }
    let mut seen = BTreeSet::new();
    for (i, h) in header.iter().enumerate() {
        if h.is_empty() {
            return Err(csv_err(format!("column {} has no name", i + 1)));
        }
        if !seen.insert(h) {
            return Err(csv_err(format!("two columns are named `{h}`")));
        }
    }
    if raw.rows.is_empty() {
        return Err(csv_err("no data rows".into()));
    }
    let comma = raw.decimal_comma();
    let cell_err = |row: usize, column: usize, what: &str| {
        csv_err(format!(
            "line {}, column `{}`: {what}",
            raw.lines[row], header[column]
        ))
    };
    // Target: numeric, finite.
    let mut target = Vec::with_capacity(raw.rows.len());
    for (r, row) in raw.rows.iter().enumerate() {
        let cell = &row[target_at];
        match parse_number(cell, comma) {
            Some(v) if v.is_finite() => target.push(v),
            _ if cell.is_empty() => return Err(cell_err(r, target_at, "empty target")),
            _ => {
                return Err(cell_err(
                    r,
                    target_at,
                    &format!("`{cell}` is not a finite number (the target must be numeric: integer class labels or real values)"),
                ))
            }
        }
    }
    // Features: each column numeric or categorical.
    let mut columns = Vec::new();
    let mut blocks: Vec<Vec<Vec<f64>>> = Vec::new(); // per column: per row its features
    for (j, h) in header.iter().enumerate() {
        if j == target_at {
            continue;
        }
        let cells: Vec<&str> = raw.rows.iter().map(|r| r[j].as_str()).collect();
        if let Some(r) = cells.iter().position(|c| c.is_empty()) {
            return Err(cell_err(
                r,
                j,
                "empty cell (missing values are not supported: fill or drop them first)",
            ));
        }
        let parsed: Vec<Option<f64>> = cells.iter().map(|c| parse_number(c, comma)).collect();
        let numeric = parsed.iter().filter(|v| v.is_some()).count();
        let kind = if numeric == cells.len() {
            if let Some(r) = parsed.iter().position(|v| !v.is_some_and(f64::is_finite)) {
                return Err(cell_err(
                    r,
                    j,
                    &format!("{} is not a finite number", cells[r]),
                ));
            }
            ColumnKind::Numeric
        } else if 2 * numeric >= cells.len() {
            let r = parsed.iter().position(Option::is_none).unwrap_or(0);
            return Err(cell_err(
                r,
                j,
                &format!(
                    "`{}` is not a number (the column is otherwise numeric)",
                    cells[r]
                ),
            ));
        } else {
            let categories: BTreeSet<&str> = cells.iter().copied().collect();
            if categories.len() > MAX_CATEGORIES {
                return Err(csv_err(format!(
                    "column `{h}` holds text with {} distinct values, more than {MAX_CATEGORIES} categories: an identifier or free text? Drop it, or encode it as numbers",
                    categories.len()
                )));
            }
            ColumnKind::Categorical {
                categories: categories.into_iter().map(str::to_string).collect(),
            }
        };
        let column = Column {
            name: h.clone(),
            kind,
        };
        let mut block = Vec::with_capacity(cells.len());
        for (r, cell) in cells.iter().enumerate() {
            let mut f = Vec::new();
            encode_cell(&column, cell, parsed[r], comma, &mut f)
                .map_err(|e| cell_err(r, j, &e.to_string()))?;
            block.push(f);
        }
        columns.push(column);
        blocks.push(block);
    }
    let schema = Schema { columns };
    schema.validate().map_err(|e| csv_err(strip_input(e)))?;
    let feature_names = schema.feature_names();
    let n = raw.rows.len();
    let mut values = Vec::with_capacity(n * feature_names.len());
    for r in 0..n {
        for block in &blocks {
            values.extend_from_slice(&block[r]);
        }
    }
    let features = Array2::from_shape_vec((n, feature_names.len()), values)
        .map_err(|e| csv_err(format!("internal shape error: {e}")))?;
    Ok(Table {
        name: name.to_string(),
        schema,
        feature_names,
        features,
        target: Array1::from(target),
    })
}

/// Rows to predict, read from a CSV and encoded by column name against a model's schema.
#[derive(Debug, Clone)]
pub struct FeatureRows {
    /// `n_rows` feature rows of `schema.n_features()` values each.
    pub rows: Vec<Vec<f64>>,
    /// Columns of the file the model does not read (a `target`, an id, ...).
    pub ignored: Vec<String>,
}

/// Reads rows to predict: a CSV with a header naming the model's columns, in any order;
/// other columns are ignored (listed in `ignored`).
///
/// # Errors
///
/// `Error::Io` if the file cannot be read. `Error::Csv` if it is over [`MAX_CSV_BYTES`],
/// malformed (ragged rows), has no data rows, lacks a column of `schema`, or has a bad cell
/// (empty, not a number, unknown category), naming its line.
pub fn load_feature_rows(path: &Path, schema: &Schema, options: CsvOptions) -> Result<FeatureRows> {
    let csv_err = |message: String| Error::Csv {
        path: path.to_path_buf(),
        message,
    };
    let text = read_limited(path)?;
    let raw = RawCsv::read(&text, options).map_err(csv_err)?;
    let matched = schema
        .match_header(&raw.header)
        .map_err(|e| csv_err(format!("{}{}", strip_input(e), raw.other_delimiter_hint())))?;
    let comma = raw.decimal_comma();
    let mut rows = Vec::with_capacity(raw.rows.len());
    for (r, row) in raw.rows.iter().enumerate() {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        let encoded = matched
            .encode(schema, &cells, comma)
            .map_err(|e| csv_err(format!("line {}: {}", raw.lines[r], strip_input(e))))?;
        rows.push(encoded);
    }
    if rows.is_empty() {
        return Err(csv_err("no data rows".into()));
    }
    Ok(FeatureRows {
        rows,
        ignored: matched.ignored,
    })
}

/// An input error's message without its `invalid input:` prefix (for a CSV error that
/// names the file instead).
fn strip_input(e: Error) -> String {
    match e {
        Error::Input(m) => m,
        other => other.to_string(),
    }
}

/// Per-feature standardization `(x - mean) / std`, fitted on training rows only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    /// Per-feature training means (`n_features`), in raw units.
    pub mean: Vec<f64>,
    /// Per-feature population standard deviations (`n_features`), in raw units; a constant
    /// feature gets 1 so it maps to 0.
    pub std: Vec<f64>,
}

impl Scaler {
    /// Means and standard deviations of `x` (`n_rows × n_features`) per column. A column whose
    /// values are all equal (to rounding: a spread below 1e-12 of its magnitude) gets std 1,
    /// so it maps to 0 whatever its scale.
    pub fn fit(x: &Array2<f64>) -> Self {
        let mean = x.mean_axis(Axis(0)).map_or_else(Vec::new, |m| m.to_vec());
        let std = x
            .std_axis(Axis(0), 0.0)
            .iter()
            .zip(x.columns())
            .map(|(&s, column)| {
                // Also 1 where the spread under- or overflows f64 (beyond ~1e±154).
                if is_constant(column) || !(s > 0.0 && s.is_finite()) {
                    1.0
                } else {
                    s
                }
            })
            .collect();
        Self { mean, std }
    }

    /// Standardizes `x` (`n_rows × n_features`); the result has the same shape.
    pub fn transform(&self, x: &Array2<f64>) -> Array2<f64> {
        let mut out = x.clone();
        for mut row in out.rows_mut() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (*v - self.mean[j]) / self.std[j];
            }
        }
        out
    }

    /// Standardizes one raw row of `n_features` values.
    pub fn transform_row(&self, row: ArrayView1<f64>) -> Vec<f64> {
        row.iter()
            .enumerate()
            .map(|(j, v)| (v - self.mean[j]) / self.std[j])
            .collect()
    }
}

/// Whether a column holds one value (to rounding: its spread is at most 1e-12 of its
/// magnitude, so 1e12 + 1e-6 noise counts as constant and 1e-9-scale data does not).
pub fn is_constant(column: ArrayView1<f64>) -> bool {
    let lo = column.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = column.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let magnitude = lo.abs().max(hi.abs());
    // An empty column (no rows) or NaN spread counts as constant too.
    (hi - lo <= 1e-12 * magnitude) || (hi - lo).is_nan() || hi < lo
}

/// Interquartile ranges beyond the middle half past which [`extreme_values`] calls a training
/// value extreme (Tukey's "far out" fence is 3; heavy-tailed but genuine features stay within 50).
pub const EXTREME_IQRS: f64 = 50.0;

/// Warnings for features whose training values include extreme ones: more than
/// [`EXTREME_IQRS`] interquartile ranges outside the middle half (features with an IQR of 0,
/// such as sparse or binary ones, are skipped). A few glitch values (1e5 among values near 1)
/// wreck a standard scaler and a min/max quantizer alike; the user should know.
pub fn extreme_values(train_raw: &Array2<f64>, names: &[String]) -> Vec<String> {
    let mut warnings = Vec::new();
    for (column, name) in train_raw.columns().into_iter().zip(names) {
        let mut v: Vec<f64> = column.to_vec();
        if v.len() < 8 {
            continue;
        }
        v.sort_by(f64::total_cmp);
        let (q1, q3) = (v[v.len() / 4], v[(3 * v.len()) / 4]);
        let iqr = q3 - q1;
        if iqr <= 0.0 {
            continue;
        }
        let (lo, hi) = (q1 - EXTREME_IQRS * iqr, q3 + EXTREME_IQRS * iqr);
        let extreme: Vec<f64> = v.iter().copied().filter(|&x| x < lo || x > hi).collect();
        if let Some(worst) = extreme
            .iter()
            .copied()
            .max_by(|a, b| (a - q1).abs().total_cmp(&(b - q1).abs()))
        {
            warnings.push(format!(
                "feature `{name}`: {} training value(s) lie more than {EXTREME_IQRS} interquartile ranges outside the middle half [{}, {}] (most extreme {}); glitch values? They squeeze ordinary values into few levels and distort the plaintext model too",
                extreme.len(),
                short(q1),
                short(q3),
                short(worst)
            ));
        }
    }
    warnings
}

/// A number in about four significant digits, for messages.
fn short(x: f64) -> String {
    if x == 0.0 || (1e-3..1e6).contains(&x.abs()) {
        let s = format!("{x:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{x:.3e}")
    }
}

/// A train/test split: scaled linfa datasets for training and evaluation, the raw test rows a
/// client would encrypt, and the scaler (part of the compiled model, so clients send raw rows).
#[derive(Debug, Clone)]
pub struct Split<T> {
    /// The table's name (its file stem), used in reports.
    pub name: String,
    /// The raw input columns (what a client's rows name) and their encoding.
    pub schema: Schema,
    /// Feature names after encoding: `n_features` of them.
    pub feature_names: Vec<String>,
    /// Features constant on the training rows: every family gives them weight 0 (or never
    /// splits on them), and reports name them.
    pub constant_features: Vec<String>,
    /// Scaled training set (what linfa fits on): `n_train × n_features` records.
    pub train: Dataset<f64, T, Ix1>,
    /// Scaled test set, aligned with `test_raw`: `n_test × n_features` records.
    pub test: Dataset<f64, T, Ix1>,
    /// Raw (unscaled) training rows, `n_train × n_features`, for calibration in raw units.
    pub train_raw: Array2<f64>,
    /// Raw (unscaled) test rows, `n_test × n_features`: what a client holds and encrypts.
    pub test_raw: Array2<f64>,
    /// The standard scaler fitted on `train_raw` only (no test leakage).
    pub scaler: Scaler,
    /// Original label of each class index (classification only; empty for regression).
    pub classes: Vec<i64>,
    /// Rows of the table in the training and test parts, in order (other tools can then use
    /// exactly this split: `fhe-ml split`): 0-based row indices of the training part, sorted.
    pub train_index: Vec<usize>,
    /// 0-based row indices of the test part, sorted (`n_test`).
    pub test_index: Vec<usize>,
}

impl<T> Split<T> {
    /// Number of features after encoding.
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
    /// `test_fraction` (strictly between 0 and 1) of the rows go to the test part, at least
    /// one per class; `seed` makes the shuffle reproducible.
    ///
    /// # Errors
    ///
    /// `Error::Data` if `test_fraction` is outside `(0, 1)`, a target is not an integer, the
    /// target holds a single class, or a class has fewer than two rows.
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

    /// Seeded random split for regression (real-valued target): `ceil(test_fraction * n_rows)`
    /// test rows, keeping at least two for training.
    ///
    /// # Errors
    ///
    /// `Error::Data` if `test_fraction` is outside `(0, 1)` or the table has fewer than 3 rows.
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
        let constant_features = train_raw
            .columns()
            .into_iter()
            .zip(&self.feature_names)
            .filter(|(c, _)| is_constant(*c))
            .map(|(_, n)| n.clone())
            .collect();
        let names = self.feature_names.clone();
        let train = Dataset::new(scaler.transform(&train_raw), y.select(Axis(0), train_idx))
            .with_feature_names(names.clone());
        let test = Dataset::new(scaler.transform(&test_raw), y.select(Axis(0), test_idx))
            .with_feature_names(names);
        Split {
            name: self.name.clone(),
            schema: self.schema.clone(),
            feature_names: self.feature_names.clone(),
            constant_features,
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

/// Checks a raw row a client is about to encrypt: length and finiteness.
///
/// # Errors
///
/// `Error::Shape` if `row` does not have `n_features` values, `Error::Input` if one is not
/// finite.
pub fn check_row(row: &[f64], n_features: usize) -> Result<()> {
    if row.len() != n_features {
        return Err(Error::shape("a row's features", n_features, row.len()));
    }
    if let Some(j) = row.iter().position(|v| !v.is_finite()) {
        return Err(Error::Input(format!(
            "feature {j} is {}, not a finite number",
            row[j]
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_are_detected_outside_quotes() {
        assert_eq!(detect_delimiter(b"a;b;target\n1;2;0"), b';');
        assert_eq!(detect_delimiter(b"a\tb\ttarget"), b'\t');
        assert_eq!(detect_delimiter(b"a|b|target"), b'|');
        assert_eq!(detect_delimiter(b"\"x,y,z\";b;target"), b';');
        assert_eq!(detect_delimiter(b"single"), b',');
        assert_eq!(parse_delimiter("tab").unwrap(), b'\t');
        assert!(parse_delimiter("ab").is_err());
    }

    #[test]
    fn numbers_with_a_decimal_comma_only_where_asked() {
        assert_eq!(parse_number("1,5", true), Some(1.5));
        assert_eq!(parse_number("-0,25", true), Some(-0.25));
        assert_eq!(parse_number("1,5", false), None);
        assert_eq!(parse_number("1,234,5", true), None);
        assert_eq!(parse_number(",5", true), None);
        assert_eq!(parse_number(" 2e3 ", false), Some(2000.0));
    }

    #[test]
    fn constant_columns_to_rounding() {
        let column = |v: &[f64]| Array1::from(v.to_vec());
        assert!(is_constant(column(&[7.5, 7.5, 7.5]).view()));
        assert!(is_constant(column(&[1e12, 1e12 + 1e-6]).view()));
        assert!(!is_constant(column(&[1e-9, 2e-9]).view()));
        assert!(!is_constant(column(&[0.0, 1e-300]).view()));
    }

    #[test]
    fn categories_expand_and_encode_by_name() {
        let table = parse_csv_str("size,colour,target\n1,red,0\n2,blue,1\n3,red,0\n", "t")
            .expect("a valid table");
        assert_eq!(table.feature_names, ["size", "colour=blue", "colour=red"]);
        assert_eq!(table.features.row(1).to_vec(), [2.0, 1.0, 0.0]);
        let record = Record::new().with("colour", "red").with("size", 4.0);
        assert_eq!(table.schema.encode(&record).unwrap(), [4.0, 0.0, 1.0]);
        let header: Vec<String> = ["x", "colour", "size"].map(String::from).to_vec();
        let matched = table.schema.match_header(&header).unwrap();
        assert_eq!(matched.ignored, ["x"]);
        assert_eq!(
            matched
                .encode(&table.schema, &["?", "blue", "5"], false)
                .unwrap(),
            [5.0, 1.0, 0.0]
        );
        let err = table
            .schema
            .match_header(&["colour".to_string()])
            .unwrap_err();
        assert!(err.to_string().contains("missing column `size`"), "{err}");
    }

    #[test]
    fn stratified_counts_follow_scikit_learn() {
        // 30 + 10 rows at 20%: ceil(8) test rows, 6 and 2.
        let members = vec![(0..30).collect::<Vec<_>>(), (30..40).collect()];
        assert_eq!(stratified_counts(&members, 0.2), [6, 2]);
        // A class of two keeps one row on each side, even one past ceil(0.2 × 50) = 10.
        let members = vec![(0..2).collect::<Vec<_>>(), (2..50).collect()];
        assert_eq!(stratified_counts(&members, 0.2), [1, 10]);
    }
}
