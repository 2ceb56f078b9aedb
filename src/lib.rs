//! # fhe-ml
//!
//! Privacy-preserving machine learning on TFHE (the `tfhe` crate): train on plaintext with
//! linfa, compile to an integer model, encrypt features on the client, infer on ciphertexts on
//! the server, decrypt on the client.
//!
//! One path for every family: fit, [`compile`], `keygen`, encrypt, infer, decrypt, and
//! [`CompiledModel::predict`] with the [`Mode`] named as Concrete ML names it
//! (`Float`, `Clear` = "disable", `Noisy` = "simulate", `Encrypted` = "execute"):
//!
//! ```
//! use fhe_ml::prelude::*;
//!
//! # fn main() -> fhe_ml::Result<()> {
//! let data = fhe_ml::data::parse_csv_str(fhe_ml::data::BREAST_CANCER_CSV, "bc")?.split(0.2, 42)?;
//! let fitted = LogisticParams::default().fit(&data)?;            // linfa, plaintext
//! let model = fhe_ml::compile(&fitted, &data, Options::bits(8))?; // integer program
//! let (client, server) = model.keygen()?;                         // the client keeps the key
//! let row = data.test_raw.row(0).to_vec();
//! let out = server.infer(&client.encrypt(&row)?)?;                // ciphertexts only
//! assert_eq!(client.decrypt(&out)?, model.predict(&row, Mode::Clear)?); // the exact twin
//! # Ok(()) }
//! ```
//!
//! An MLP and a forest take the same steps; their programs bootstrap, so `keygen` also hands
//! the server the client's evaluation key:
//!
//! ```
//! use fhe_ml::prelude::*;
//!
//! # fn main() -> fhe_ml::Result<()> {
//! let data = fhe_ml::data::parse_csv_str(fhe_ml::data::BREAST_CANCER_CSV, "bc")?.split(0.2, 42)?;
//! let fitted = MlpParams::default().hidden(&[8]).epochs(20).fit(&data)?;
//! let model = fhe_ml::compile(&fitted, &data, Options::default())?;
//! let (client, server) = model.keygen()?;                         // evaluation key inside
//! let row = data.test_raw.row(0).to_vec();
//! let label = client.decrypt(&server.infer(&client.encrypt(&row)?)?)?;
//! assert_eq!(label.class_index(), model.predict(&row, Mode::Clear)?.class_index());
//! # Ok(()) }
//! ```
//!
//! ```
//! use fhe_ml::prelude::*;
//!
//! # fn main() -> fhe_ml::Result<()> {
//! let data = fhe_ml::data::parse_csv_str(fhe_ml::data::BREAST_CANCER_CSV, "bc")?.split(0.2, 42)?;
//! let fitted = ForestParams::forest().trees(3).fit(&data)?;
//! let model = fhe_ml::compile(&fitted, &data, Options::default())?;
//! let (client, server) = model.keygen()?;
//! let row = data.test_raw.row(0).to_vec();
//! let votes = client.decrypt_scores(&server.infer(&client.encrypt(&row)?)?)?;
//! assert_eq!(votes, model.simulate(&row)?);                       // trees are exact
//! # Ok(()) }
//! ```
//!
//! To protect the model as well, `model.with_output(OutputMode::Label)?` serves only the
//! encrypted label, computed exactly and re-randomized ([`fhe::label`]);
//! `OutputMode::TopK(3)` serves the three best classes, best first (`client.decrypt_labels`).
//!
//! Modules follow the pipeline: [`data`] → [`train`] → [`compiler`] (one file per family,
//! [`quant`]) → [`model`] → [`program`] (the integer program and its clear, noisy and
//! encrypted interpreters) → [`client`] / [`server`] (the two roles) over [`fhe`], exchanging
//! the wire types of [`protocol`] → [`eval`] → [`report`] and [`plots`]; [`service`] serves
//! models over HTTP and [`remote`] is its client.

#![deny(missing_docs)]

pub mod auth;
pub mod batch;
pub mod client;
pub mod compiler;
pub mod data;
pub mod error;
pub mod eval;
pub mod fhe;
pub mod import;
pub mod keystore;
pub mod metrics;
pub mod model;
pub mod plots;
pub mod program;
pub mod protocol;
pub mod quant;
pub mod remote;
pub mod report;
pub mod server;
pub mod service;
pub mod train;

pub use compiler::{compile, Compile, Options};
pub use error::{Error, Result};
pub use model::{CompiledModel, Mode};

/// The types a user's program needs.
pub mod prelude {
    pub use crate::client::Client;
    pub use crate::compiler::LinearModel;
    pub use crate::compiler::{compile, Compile, Options};
    pub use crate::data::{load_csv, Record, Split, Table};
    pub use crate::fhe::OutputMode;
    pub use crate::model::{CompiledModel, Mode};
    pub use crate::program::Prediction;
    pub use crate::protocol::ClientSpec;
    pub use crate::protocol::{EncryptedInput, EncryptedOutput, ServerModel};
    pub use crate::quant::Quantization;
    pub use crate::server::Server;
    pub use crate::train::ensembles::{GbdtParams, TreeRegressorParams};
    pub use crate::train::linear::{GlmParams, PenalizedParams, SvmParams};
    pub use crate::train::params::{ForestParams, LinearParams, LogisticParams, MlpParams};
    pub use crate::{Error, Result};
    pub use linfa::ParamGuard;
}
