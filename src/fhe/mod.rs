//! Cryptography on `tfhe`: the parameter set, the encoding plan with its noise bounds, the
//! LWE/GLWE kernels (core_crypto), bootstrapped lookups and evaluation keys (shortint), label
//! mode's comparisons and sanitization, and the wire format.

pub mod bootstrap;
pub mod kernels;
pub mod label;
pub mod params;
pub mod plan;
pub mod stats;
pub mod wire;

pub use bootstrap::EvaluationKey;
pub use label::{LabelHead, OutputMode};
pub use params::{BootstrapNoise, LeveledParameters};
pub use plan::{EncodingPlan, LookupEncoding, NoiseReport};
