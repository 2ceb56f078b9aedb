//! The server: owns the integer model and computes on ciphertexts. It holds no key material,
//! and no constructor or method takes a secret key; wire readers refuse one.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fhe::kernels::{
    axpy, expand_mask, extended_mask, pack_bits, round_to_bits, unpack_bits,
};
use crate::fhe::wire::{self, Kind};
use crate::fhe::LeveledPlan;
use crate::program::{LinearLayer, Program};

/// What the server holds: the integer program and its encoding plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerModel {
    pub model_id: [u8; 16],
    pub program: Program,
    pub plan: LeveledPlan,
}

/// One encrypted row: the GLWE mask's seed and the first `n_inputs` body coefficients, rounded
/// to `body_bits` bits and bit-packed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedInput {
    pub(crate) model_id: [u8; 16],
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
    pub(crate) bits: u32,
    pub(crate) n_outputs: u32,
    pub(crate) lwe_dimension: u32,
    pub(crate) coefficients: Vec<u8>,
}

macro_rules! wire_type {
    ($ty:ty, $kind:expr) => {
        impl $ty {
            /// Serializes into a versioned, size-limited, integrity-checked blob.
            pub fn to_bytes(&self) -> Result<Vec<u8>> {
                wire::seal($kind, self)
            }

            /// Reads a blob written by `to_bytes`, refusing anything else.
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
}
wire_type!(EncryptedOutput, Kind::EncryptedOutput);
wire_type!(ServerModel, Kind::ServerModel);

/// The evaluating side of encrypted inference.
#[derive(Debug, Clone)]
pub struct Server {
    model: ServerModel,
}

impl Server {
    /// A server for a model. Only leveled (single linear step) programs run encrypted so far.
    pub fn new(model: ServerModel) -> Result<Self> {
        model.program.validate()?;
        model.plan.params.check_features(model.program.n_inputs)?;
        let layer = model.program.as_linear().ok_or_else(|| {
            Error::Compile("the encrypted interpreter runs single linear-step programs".into())
        })?;
        let bounds = model.program.output_bounds();
        let expected = LeveledPlan::for_linear(model.plan.params.clone(), layer, &bounds)?;
        if expected != model.plan {
            return Err(Error::Compile(
                "the model's encoding plan does not match its program".into(),
            ));
        }
        Ok(Self { model })
    }

    pub fn model(&self) -> &ServerModel {
        &self.model
    }

    fn layer(&self) -> &LinearLayer {
        self.model
            .program
            .as_linear()
            .expect("checked in Server::new")
    }

    /// Runs the model on one encrypted row.
    pub fn infer(&self, input: &EncryptedInput) -> Result<EncryptedOutput> {
        let plan = &self.model.plan;
        let layer = self.layer();
        let d = layer.n_inputs;
        if input.model_id != self.model.model_id {
            return Err(Error::Wire(
                "the ciphertext was made for another model or parameter set".into(),
            ));
        }
        if input.body_bits != plan.input_body_bits || input.n_inputs as usize != d {
            return Err(Error::Wire(format!(
                "ciphertext holds {} inputs at {} bits, the model takes {d} at {} bits",
                input.n_inputs, input.body_bits, plan.input_body_bits
            )));
        }
        let shift = 64 - plan.input_body_bits;
        let bodies: Vec<u64> = unpack_bits(&input.bodies, input.body_bits, d)?
            .into_iter()
            .map(|b| if shift == 64 { 0 } else { b << shift })
            .collect();
        let n = plan.params.polynomial_size;
        let f = extended_mask(&expand_mask(input.seed, n), d);
        let mut out = Vec::with_capacity(layer.n_outputs * (n + 1));
        let mut mask = vec![0u64; n];
        for o in 0..layer.n_outputs {
            mask.fill(0);
            let mut body = (layer.bias[o] as u64).wrapping_shl(plan.delta_log2);
            for (i, &w) in layer.row(o).iter().enumerate() {
                if w != 0 {
                    axpy(&mut mask, w as u64, &f[i..i + n]);
                    body = body.wrapping_add((w as u64).wrapping_mul(bodies[i]));
                }
            }
            out.extend(mask.iter().map(|&m| round_to_bits(m, plan.output_bits)));
            out.push(round_to_bits(body, plan.output_bits));
        }
        Ok(EncryptedOutput {
            model_id: self.model.model_id,
            bits: plan.output_bits,
            n_outputs: layer.n_outputs as u32,
            lwe_dimension: n as u32,
            coefficients: pack_bits(&out, plan.output_bits),
        })
    }

    /// Runs the model on many rows, in parallel on all cores; one result per row.
    pub fn infer_batch(&self, inputs: &[EncryptedInput]) -> Vec<Result<EncryptedOutput>> {
        inputs.par_iter().map(|ct| self.infer(ct)).collect()
    }

    /// Wire form of `infer`: an input blob in, an output blob out.
    pub fn infer_bytes(&self, input: &[u8]) -> Result<Vec<u8>> {
        self.infer(&EncryptedInput::from_bytes(input)?)?.to_bytes()
    }
}
