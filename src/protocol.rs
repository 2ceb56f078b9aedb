//! The inference service's protocol, shared by the service and its clients: the JSON bodies of
//! its answers (`ModelInfo`, `Health`, `KeyReceipt`) and the one rule for model names. The
//! binary bodies are the wire types' envelopes (`crate::fhe::wire`).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest model name, in bytes.
pub const MAX_MODEL_NAME: usize = 64;

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_MODEL_NAME
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// The one rule for model names (the service's URLs and `export`'s file names): 1 to 64 ASCII
/// letters, digits, `-`, `_` and `.`, not starting with `.`.
///
/// # Errors
/// `Error::ModelFile` when the name breaks the rule (the service answers 400).
pub fn check_model_name(name: &str) -> Result<()> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(Error::ModelFile(format!(
            "invalid model name {name:?}: use 1 to {MAX_MODEL_NAME} ASCII letters, digits, `-`, `_` and `.` (not first)"
        )))
    }
}

/// A valid model name made from any text (a file stem such as `patient data` or `données`):
/// accents dropped from common Latin letters, anything else outside the rule becomes `-`,
/// runs of `-` collapse, and the result is cut to fit; `model` if nothing is left.
pub fn sanitize_model_name(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let mapped = match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '.' => Some(c),
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => Some('a'),
            'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => Some('A'),
            'ç' => Some('c'),
            'Ç' => Some('C'),
            'è' | 'é' | 'ê' | 'ë' => Some('e'),
            'È' | 'É' | 'Ê' | 'Ë' => Some('E'),
            'ì' | 'í' | 'î' | 'ï' => Some('i'),
            'Ì' | 'Í' | 'Î' | 'Ï' => Some('I'),
            'ñ' => Some('n'),
            'Ñ' => Some('N'),
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => Some('o'),
            'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' => Some('O'),
            'ù' | 'ú' | 'û' | 'ü' => Some('u'),
            'Ù' | 'Ú' | 'Û' | 'Ü' => Some('U'),
            'ý' | 'ÿ' => Some('y'),
            'ß' => Some('s'),
            _ => None,
        };
        match mapped {
            Some(m) => out.push(m),
            None if !out.ends_with('-') => out.push('-'),
            None => {}
        }
    }
    let trimmed = out.trim_matches(|c| c == '-' || c == '.');
    let mut name: String = trimmed.chars().take(MAX_MODEL_NAME).collect();
    while name.ends_with('-') || name.ends_with('.') {
        name.pop();
    }
    if name.is_empty() {
        "model".into()
    } else {
        name
    }
}

/// What `GET /v1/models/{name}` returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The model's name, as in its URLs.
    pub name: String,
    /// One line on the model (its architecture).
    pub description: String,
    /// The model's 16-byte id, hex: ciphertexts and results carry it.
    pub model_id: String,
    /// Features per row after one-hot encoding: what one ciphertext holds.
    pub n_features: usize,
    /// The raw columns a row must name (any order), with the categories of text columns.
    pub columns: Vec<crate::data::Column>,
    /// `n_features` feature names after one-hot encoding.
    pub feature_names: Vec<String>,
    /// Bits per quantized input feature.
    pub input_bits: u32,
    /// The tfhe parameter set, in one line (name, GLWE dimension, polynomial size, noise).
    pub params: String,
    /// `binary`, `multiclass` or `regression`.
    pub output: String,
    /// The class labels, by class index (empty for regression).
    pub classes: Vec<i64>,
    /// Whether a client must first `POST /v1/keys` its evaluation key (the model
    /// bootstraps, or returns labels).
    pub needs_evaluation_key: bool,
    /// `scores`, `label` or `top-K`: what a prediction returns.
    pub output_mode: String,
    /// Programmable bootstraps one inference costs (program and label head): its main cost.
    pub bootstraps_per_inference: usize,
    /// The client spec blob, base64 (also at `/v1/models/{name}/client-spec`).
    pub client_spec: String,
}

/// `GET /v1/health`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// `ok` while the service serves.
    pub status: String,
    /// Models served.
    pub models: usize,
    /// Expanded evaluation keys held (at most the service's `max_keys`).
    pub keys: usize,
    /// The fhe-ml version the service runs.
    pub version: String,
}

/// `POST /v1/keys`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyReceipt {
    /// The key's id, hex: the inputs its client encrypts carry it.
    pub key_id: String,
    /// Size of the uploaded key blob, in bytes.
    pub bytes: usize,
}
