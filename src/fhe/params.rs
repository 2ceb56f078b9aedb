//! The cryptographic parameters: tfhe's shipped 128-bit sets, never invented ones.
//!
//! Linear models need only the GLWE part of a shortint set: its GLWE dimension k, polynomial size
//! N, ciphertext modulus and GLWE noise distribution. Inputs are GLWE encryptions under tfhe's
//! binary GLWE secret key, exactly as the set's bootstrapping key encrypts its secrets.

use serde::{Deserialize, Serialize};
use tfhe::core_crypto::prelude::DynamicDistribution;
use tfhe::shortint::parameters::v1_8::V1_8_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128;

use crate::error::{Error, Result};

/// The GLWE part of a tfhe parameter set, as the leveled path uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeveledParameters {
    /// The tfhe constant these come from.
    pub name: String,
    pub glwe_dimension: usize,
    pub polynomial_size: usize,
    /// GLWE noise is TUniform over `[-2^b, 2^b]` (bounded, so noise bounds are exact).
    pub noise_bound_log2: u32,
    /// Ciphertext modulus bits (64: native u64 arithmetic).
    pub modulus_bits: u32,
}

impl LeveledParameters {
    /// `V1_8_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128`: k = 1, N = 2048, TUniform(17),
    /// q = 2^64, published 128-bit security and p-fail 2^-129.6 for its bootstrap.
    pub fn tfhe_v1_8_message_2_carry_2() -> Self {
        let p = V1_8_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128;
        let noise_bound_log2 = match p.glwe_noise_distribution {
            DynamicDistribution::TUniform(t) => t.bound_log2(),
            // The set is TUniform by name; a Gaussian here would break the exact bounds.
            DynamicDistribution::Gaussian(_) => unreachable!("a TUNIFORM set has TUniform noise"),
        };
        assert!(p.ciphertext_modulus.is_native_modulus());
        Self {
            name: "V1_8_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128".into(),
            glwe_dimension: p.glwe_dimension.0,
            polynomial_size: p.polynomial_size.0,
            noise_bound_log2,
            modulus_bits: 64,
        }
    }

    /// LWE dimension of a coefficient extracted from a GLWE: k·N.
    pub fn lwe_dimension(&self) -> usize {
        self.glwe_dimension * self.polynomial_size
    }

    /// The shipped sets this build knows; parameters read from a blob must be one of them.
    pub fn known() -> Vec<Self> {
        vec![Self::tfhe_v1_8_message_2_carry_2()]
    }

    /// The packing of features into one GLWE needs k = 1 and at most N features, and the
    /// parameters must be a known tfhe set (a blob cannot smuggle in its own).
    pub fn check_features(&self, n_features: usize) -> Result<()> {
        if !Self::known().contains(self) {
            return Err(Error::Wire(format!(
                "unknown parameter set {} (k={}, N={}, noise 2^{}); this build knows {}",
                self.name,
                self.glwe_dimension,
                self.polynomial_size,
                self.noise_bound_log2,
                Self::known()
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if n_features == 0 {
            return Err(Error::Compile("a model needs at least one feature".into()));
        }
        if self.glwe_dimension != 1 {
            return Err(Error::Compile(format!(
                "{} has GLWE dimension {}; the leveled path packs features into one polynomial and needs 1",
                self.name, self.glwe_dimension
            )));
        }
        if n_features > self.polynomial_size {
            return Err(Error::Compile(format!(
                "{n_features} features do not fit one GLWE of {} coefficients",
                self.polynomial_size
            )));
        }
        Ok(())
    }

    /// One line for reports.
    pub fn describe(&self) -> String {
        format!(
            "{} (GLWE k={}, N={}, TUniform(2^{}) noise, q=2^{})",
            self.name,
            self.glwe_dimension,
            self.polynomial_size,
            self.noise_bound_log2,
            self.modulus_bits
        )
    }
}

impl Default for LeveledParameters {
    fn default() -> Self {
        Self::tfhe_v1_8_message_2_carry_2()
    }
}
