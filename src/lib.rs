//! # fhe-ml
//!
//! Privacy-preserving machine learning on TFHE (the `tfhe` crate): train on plaintext with
//! linfa, compile to an integer model, encrypt features on the client, infer on ciphertexts on
//! the server, decrypt on the client.
//!
//! ```no_run
//! use fhe_ml::prelude::*;
//!
//! # fn main() -> fhe_ml::Result<()> {
//! let data = fhe_ml::data::load_csv("data/breast_cancer.csv")?.split(0.2, 42)?;
//! let model = fhe_ml::train::fit_logistic(&data)?;                     // linfa, plaintext
//! let model = fhe_ml::compile(&model, &data, Quantization::bits(8))?;  // integer model
//! let (client, server) = model.keygen()?;        // the client holds the secret key
//! let row = data.test_raw.row(0).to_vec();
//! let ct = client.encrypt(&row)?;                // client side
//! let out = server.infer(&ct)?;                  // server side: ciphertexts only
//! let label = client.decrypt(&out)?;             // client side
//! assert_eq!(client.decrypt_scores(&out)?, model.simulate(&row)?); // exact twin
//! # Ok(()) }
//! ```
//!
//! To protect the model as well, `model.with_output(OutputMode::Label)?` serves only the
//! encrypted label, computed exactly and re-randomized ([`fhe::label`]);
//! `OutputMode::TopK(3)` serves the three best classes, best first (`client.decrypt_labels`).
//!
//! Modules follow the pipeline: [`data`] → [`train`] → [`quant`] / [`model`] (compile) →
//! [`program`] (integer model, `simulate`) → [`client`] / [`server`] over [`fhe`] →
//! [`eval`] → [`report`] and [`plots`]; [`service`] serves models over HTTP and [`remote`] is
//! its client.

pub mod client;
pub mod data;
pub mod error;
pub mod eval;
pub mod fhe;
pub mod model;
pub mod plots;
pub mod program;
pub mod quant;
pub mod remote;
pub mod report;
pub mod server;
pub mod service;
pub mod train;

pub use error::{Error, Result};
pub use model::{compile, CompiledModel};

/// The types a user's program needs.
pub mod prelude {
    pub use crate::client::{Client, ClientSpec};
    pub use crate::data::{load_csv, Split, Table};
    pub use crate::fhe::OutputMode;
    pub use crate::model::{compile, CompiledModel, LinearModel};
    pub use crate::program::Prediction;
    pub use crate::quant::Quantization;
    pub use crate::server::{EncryptedInput, EncryptedOutput, Server, ServerModel};
    pub use crate::{Error, Result};
}
