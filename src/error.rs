//! The crate's one error type: every failure a user can cause ends here, with a clear message,
//! never a panic. Variants are structured where a caller acts on them (a shape mismatch, an
//! unknown model, a ciphertext for another model, an oversized body), and each maps to the HTTP
//! status the service answers with ([`Error::http_status`]) and a name the service's JSON
//! carries ([`Error::variant`]).

use std::path::PathBuf;

/// Everything that can go wrong in fhe-ml, from reading a CSV to decoding a ciphertext.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A CSV file's content: `message` names the line and column.
    #[error("{path}: {message}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        message: String,
    },
    /// A table that cannot be split or trained on (one class, a class with one row, ...).
    #[error("invalid data: {0}")]
    Data(String),
    /// Training failed or its settings are invalid.
    #[error("training failed: {0}")]
    Training(String),
    /// The model does not compile to the parameter set, or the options do not apply to it.
    #[error("cannot compile the model: {0}")]
    Compile(String),
    /// A value the caller passed is invalid (a non-finite feature, an unknown category, ...).
    #[error("invalid input: {0}")]
    Input(String),
    /// Something has the wrong length: a row, a batch, a list of scores.
    #[error("invalid input: {what}: {found} given, the model expects {expected}")]
    Shape {
        /// What was measured (`a row's features`, `scores`, ...).
        what: String,
        /// The length the model needs.
        expected: usize,
        /// The length given.
        found: usize,
    },
    /// No model of this name (the service's models, or `eval --server`).
    #[error("no model named {name:?} (GET /v1/models lists them)")]
    UnknownModel {
        /// The name asked for.
        name: String,
    },
    /// An evaluation key the service does not hold (never sent, or evicted).
    #[error("unknown evaluation key {key_id}: POST it to /v1/keys first")]
    UnknownKey {
        /// The key's id, hex.
        key_id: String,
    },
    /// A ciphertext, result, key or secret key made for another model or parameter set.
    #[error("made for another model: {0}")]
    ModelMismatch(String),
    /// A blob of another kind than expected (a key where a ciphertext belongs, ...).
    #[error("rejected blob: expected {expected}, got {found}")]
    WrongKind {
        /// The kind expected.
        expected: String,
        /// The kind found.
        found: String,
    },
    /// A malformed, truncated or corrupted ciphertext or key.
    #[error("rejected ciphertext or key: {0}")]
    Wire(String),
    /// More bytes, rows or keys than the limit.
    #[error("{what} is {size}, over the limit of {limit}")]
    TooLarge {
        /// What is too large (`request body (bytes)`, `batch (rows)`, ...).
        what: String,
        /// The limit.
        limit: usize,
        /// The size given.
        size: usize,
    },
    /// A model file or model name that `serve` cannot use (not a ciphertext or key problem).
    #[error("invalid model file: {0}")]
    ModelFile(String),
    /// An ONNX node whose operator, attribute or shape fhe-ml cannot import exactly.
    #[error("ONNX node {node:?} ({op}): {message}")]
    Onnx {
        /// The node's name (`#i` for the i-th node when it has none).
        node: String,
        /// Its operator (`op_type`).
        op: String,
        /// What is not supported, and what is.
        message: String,
    },
    /// The inference service answered with an error, or could not be reached.
    #[error("inference service: {0}")]
    Remote(String),
    /// No API token, or one the service does not know (the service answers 401).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// A valid token asking for what belongs to another tenant (403).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A tenant over its request rate or its query budget for a model (429, with
    /// `Retry-After`).
    #[error("{what}: try again in {retry_after_s} s")]
    RateLimited {
        /// Which quota (`request rate 600/min`, `query budget 10000/day for model iris`).
        what: String,
        /// Seconds until the quota allows the request.
        retry_after_s: u64,
    },
    /// The service is shutting down or cannot take the request now.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// An internal failure (a worker thread, the runtime): a bug or the system, not the input.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// The HTTP status the inference service answers with: 400 for malformed input, 401
    /// without a valid token, 403 for another tenant's resource, 404 for an unknown model, 409
    /// for a ciphertext or key that does not match the service's state, 413 for an oversized
    /// request, 422 for well-formed data the model cannot use, 429 over a quota, 500 for an
    /// internal failure, 502 for a failing upstream service, 503 while shutting down.
    ///
    /// ```
    /// let err = fhe_ml::Error::UnknownModel { name: "iris-logistic".into() };
    /// assert_eq!((err.http_status(), err.variant()), (404, "UnknownModel"));
    /// ```
    pub fn http_status(&self) -> u16 {
        match self {
            Error::Csv { .. }
            | Error::Input(_)
            | Error::Shape { .. }
            | Error::WrongKind { .. }
            | Error::Wire(_)
            | Error::ModelFile(_) => 400,
            Error::Unauthorized(_) => 401,
            Error::Forbidden(_) => 403,
            Error::UnknownModel { .. } => 404,
            Error::UnknownKey { .. } | Error::ModelMismatch(_) => 409,
            Error::TooLarge { .. } => 413,
            Error::Data(_) | Error::Training(_) | Error::Compile(_) | Error::Onnx { .. } => 422,
            Error::RateLimited { .. } => 429,
            Error::Io { .. } | Error::Other(_) => 500,
            Error::Remote(_) => 502,
            Error::Unavailable(_) => 503,
        }
    }

    /// The variant's name, as the service's JSON errors carry it (`"UnknownModel"`, ...).
    pub fn variant(&self) -> &'static str {
        match self {
            Error::Io { .. } => "Io",
            Error::Csv { .. } => "Csv",
            Error::Data(_) => "Data",
            Error::Training(_) => "Training",
            Error::Compile(_) => "Compile",
            Error::Input(_) => "Input",
            Error::Shape { .. } => "Shape",
            Error::UnknownModel { .. } => "UnknownModel",
            Error::UnknownKey { .. } => "UnknownKey",
            Error::ModelMismatch(_) => "ModelMismatch",
            Error::WrongKind { .. } => "WrongKind",
            Error::Wire(_) => "Wire",
            Error::TooLarge { .. } => "TooLarge",
            Error::ModelFile(_) => "ModelFile",
            Error::Onnx { .. } => "Onnx",
            Error::Remote(_) => "Remote",
            Error::Unavailable(_) => "Unavailable",
            Error::Unauthorized(_) => "Unauthorized",
            Error::Forbidden(_) => "Forbidden",
            Error::RateLimited { .. } => "RateLimited",
            Error::Other(_) => "Other",
        }
    }

    /// A wrong length, as a `Shape` error.
    pub fn shape(what: impl Into<String>, expected: usize, found: usize) -> Self {
        Error::Shape {
            what: what.into(),
            expected,
            found,
        }
    }
}

/// fhe-ml's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
