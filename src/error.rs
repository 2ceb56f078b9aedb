//! The crate's one error type: every failure a user can cause ends here, with a clear message,
//! never a panic.

use std::path::PathBuf;

/// Everything that can go wrong in fhe-ml, from reading a CSV to decoding a ciphertext.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Csv { path: PathBuf, message: String },
    #[error("invalid data: {0}")]
    Data(String),
    #[error("training failed: {0}")]
    Training(String),
    #[error("cannot compile the model: {0}")]
    Compile(String),
    #[error("invalid input: {0}")]
    Input(String),
    #[error("rejected ciphertext or key: {0}")]
    Wire(String),
    /// A model file or model name that `serve` cannot use (not a ciphertext or key problem).
    #[error("invalid model file: {0}")]
    ModelFile(String),
    #[error("inference service: {0}")]
    Remote(String),
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
