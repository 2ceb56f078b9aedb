//! The wire types: everything that travels between a client, a server and the service. The
//! binary ones ([`ClientSpec`], [`ServerModel`], [`EncryptedInput`], [`EncryptedOutput`]) are
//! sealed in versioned, size-limited, integrity-checked envelopes (`crate::fhe::wire`); the
//! service's JSON answers are [`ModelInfo`], [`Health`] and [`KeyReceipt`]; and the one rule
//! for model names.

use serde::{Deserialize, Serialize};

use crate::data::Schema;
use crate::error::{Error, Result};
use crate::fhe::bootstrap::KeyId;
use crate::fhe::wire::{self, Kind};
use crate::fhe::{EncodingPlan, OutputMode};
use crate::program::{Decoder, Program};
use crate::quant::InputQuantizer;

/// The public part of a model a client needs: names, quantizer, decoder, plan. No weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientSpec {
    /// The model's 16-byte id (a BLAKE3 digest of the compiled model): ciphertexts, results
    /// and secret keys made for another model are refused.
    pub model_id: [u8; 16],
    /// The model bootstraps, or returns labels: the server needs this client's evaluation key.
    pub needs_evaluation_key: bool,
    /// What the server returns: scores, or only the label.
    pub output: OutputMode,
    /// Name of the dataset the model was trained on.
    pub name: String,
    /// The raw columns rows name ([`crate::client::Client::encrypt_record`], `fhe-ml predict`): matched by
    /// name, categorical ones one-hot encoded.
    pub schema: Schema,
    /// `n_features` feature names after encoding.
    pub feature_names: Vec<String>,
    /// Maps each raw feature to an integer level below `2^bits`, as at compilation.
    pub quantizer: InputQuantizer,
    /// Turns decrypted integer scores into a class (with probabilities) or a value.
    pub decoder: Decoder,
    /// The encoding plan: parameter set, deltas, and the bits each input body and output
    /// coefficient travels with.
    pub plan: EncodingPlan,
}

impl ClientSpec {
    /// Serializes into a versioned, size-limited, integrity-checked blob (kind `ClientSpec`).
    ///
    /// # Errors
    /// `Error::Wire` when the spec does not serialize within the kind's 64 MiB limit.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        wire::seal(Kind::ClientSpec, self)
    }

    /// Reads a blob written by [`ClientSpec::to_bytes`] and validates the spec
    /// ([`ClientSpec::validate`]).
    ///
    /// # Errors
    /// `Error::Wire` for malformed, truncated or corrupted bytes, another format version, or
    /// an invalid spec; `Error::WrongKind` for a blob of another kind; `Error::TooLarge` for a
    /// payload over the limit; `Error::Compile` for no features, or more than the polynomial
    /// size N.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let spec: Self = wire::open(Kind::ClientSpec, bytes)?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks what a client relies on, so a spec read from a blob cannot make it panic.
    ///
    /// # Errors
    /// `Error::Wire` for an unknown parameter set or a quantizer, schema, decoder or plan that
    /// disagree; `Error::Compile` for no features, or more than the polynomial size N.
    pub fn validate(&self) -> Result<()> {
        let q = &self.quantizer;
        let d = q.n_features();
        self.plan.params.check_features(d)?;
        let bad = |m: String| Err(Error::Wire(format!("invalid client spec: {m}")));
        if !(1..=crate::program::MAX_INPUT_BITS).contains(&q.bits) {
            return bad(format!("{}-bit inputs", q.bits));
        }
        if q.step.len() != d || self.feature_names.len() != d || self.schema.n_features() != d {
            return bad("quantizer, schema and feature names disagree on the feature count".into());
        }
        if let Err(e) = self.schema.validate() {
            return bad(e.to_string());
        }
        if q.is_binned()
            && (q.edges.len() != d
                || q.edges.iter().any(|e| {
                    e.len() as u64 > q.max_level()
                        || e.iter().any(|v| !v.is_finite())
                        || e.windows(2).any(|w| w[0] >= w[1])
                }))
        {
            return bad("invalid quantizer cut points".into());
        }
        if q.low.iter().any(|v| !v.is_finite())
            || q.step.iter().any(|v| !v.is_finite() || *v <= 0.0)
        {
            return bad("non-finite or non-positive quantizer ranges".into());
        }
        let d = &self.decoder;
        if !(d.scale.is_finite() && d.scale > 0.0 && d.offset.is_finite()) || d.n_outputs() == 0 {
            return bad(
                "decoder without outputs, or with a non-positive scale or a non-finite offset"
                    .into(),
            );
        }
        let plan = &self.plan;
        if plan.delta_log2 >= 63
            || plan.output_delta_log2 >= 63
            || !(1..=64).contains(&plan.input_body_bits)
            || !(1..=64).contains(&plan.output_bits)
            || plan.output_delta_log2 + plan.output_bits < 64
        {
            return bad("inconsistent encoding plan".into());
        }
        Ok(())
    }
}

/// What the server holds: the integer program and its encoding plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerModel {
    /// The model's 16-byte id: inputs made for another model are refused.
    pub model_id: [u8; 16],
    /// The integer program: linear layers, table lookups and, in label and top-K modes, the
    /// label head ([`Program::output`] says which).
    pub program: Program,
    /// Where values sit in the torus; checked against the program when a server is built.
    pub plan: EncodingPlan,
}

/// One encrypted row: the GLWE mask's seed and the first `n_inputs` body coefficients, rounded
/// to `body_bits` bits and bit-packed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedInput {
    pub(crate) model_id: [u8; 16],
    /// The evaluation key of the encrypting client (none for leveled models): models that
    /// bootstrap run only under that key.
    pub(crate) key_id: Option<KeyId>,
    pub(crate) seed: u128,
    pub(crate) body_bits: u32,
    pub(crate) n_inputs: u32,
    pub(crate) bodies: Vec<u8>,
}

/// Encrypted scores: `n_outputs` LWE ciphertexts of dimension `lwe_dimension` (mask then body),
/// modulus-switched to `bits` bits per coefficient and bit-packed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedOutput {
    pub(crate) model_id: [u8; 16],
    /// Scores, or label bits (`±2^62` each, bit 0 first).
    pub(crate) mode: OutputMode,
    pub(crate) bits: u32,
    pub(crate) n_outputs: u32,
    pub(crate) lwe_dimension: u32,
    pub(crate) coefficients: Vec<u8>,
}

macro_rules! wire_type {
    ($ty:ty, $kind:expr) => {
        impl $ty {
            /// Serializes into a versioned, size-limited, integrity-checked blob.
            ///
            /// # Errors
            /// `Error::Wire` when the value does not serialize within its kind's limit.
            pub fn to_bytes(&self) -> Result<Vec<u8>> {
                wire::seal($kind, self)
            }

            /// Reads a blob written by `to_bytes`, refusing anything else.
            ///
            /// # Errors
            /// `Error::Wire` for malformed, truncated or corrupted bytes or another format
            /// version; `Error::WrongKind` for a blob of another kind (a secret key
            /// included); `Error::TooLarge` for a payload over the kind's limit.
            pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
                wire::open($kind, bytes)
            }
        }
    };
}
wire_type!(EncryptedInput, Kind::EncryptedInput);

impl EncryptedInput {
    /// The encrypted body coefficients, bit-packed: what travels besides the 16-byte seed.
    pub fn body_bytes(&self) -> &[u8] {
        &self.bodies
    }

    /// The seed of the GLWE mask (public: anyone holding the ciphertext expands it).
    pub fn mask_seed(&self) -> u128 {
        self.seed
    }

    /// Bits of each body coefficient.
    pub fn body_bits(&self) -> u32 {
        self.body_bits
    }
}
wire_type!(EncryptedOutput, Kind::EncryptedOutput);
wire_type!(ServerModel, Kind::ServerModel);

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
    /// Expanded evaluation keys in this replica's cache.
    pub keys: usize,
    /// Bytes of that cache (at most the service's `--key-cache-mib`, the newest key excepted).
    #[serde(default)]
    pub key_cache_bytes: u64,
    /// The key store (`memory (512 MiB)`, `redis://host:port/db`).
    #[serde(default)]
    pub key_store: String,
    /// Whether the replica takes new requests (false while it drains on shutdown).
    #[serde(default = "ready_by_default")]
    pub ready: bool,
    /// The fhe-ml version the service runs.
    pub version: String,
}

fn ready_by_default() -> bool {
    true
}

/// `POST /v1/keys`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyReceipt {
    /// The key's id, hex: the inputs its client encrypts carry it.
    pub key_id: String,
    /// Size of the uploaded key blob, in bytes.
    pub bytes: usize,
}

/// Lowercase hex of an id (model ids, key ids), as the service's JSON writes them.
pub fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}
