//! The cryptographic parameters: tfhe's shipped 128-bit sets, never invented ones.
//!
//! Linear models need only the GLWE part of a shortint set: its GLWE dimension k, polynomial size
//! N, ciphertext modulus and GLWE noise distribution. Inputs are GLWE encryptions under tfhe's
//! binary GLWE secret key, exactly as the set's bootstrapping key encrypts its secrets.

use serde::{Deserialize, Serialize};
use tfhe::core_crypto::commons::noise_formulas::centered_mean_shifted_modulus_switch::centered_binary_shifted_modulus_switch_additive_variance_impl;
use tfhe::core_crypto::commons::noise_formulas::lwe_keyswitch::keyswitch_additive_variance_132_bits_security_tuniform_impl;
use tfhe::core_crypto::commons::noise_formulas::lwe_programmable_bootstrap::pbs_variance_132_bits_security_tuniform_fft_mul_impl;
use tfhe::core_crypto::prelude::DynamicDistribution;
use tfhe::shortint::parameters::v1_8::{
    V1_8_PARAM_MESSAGE_2_CARRY_2_KS32_PBS_TUNIFORM_2M128,
    V1_8_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128,
};
use tfhe::shortint::parameters::KeySwitch32PBSParameters;
use tfhe::shortint::{AtomicPatternParameters, ClassicPBSParameters};

use crate::error::{Error, Result};

/// The GLWE part of a tfhe parameter set, as the leveled path uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeveledParameters {
    /// The tfhe constant these come from.
    pub name: String,
    /// GLWE dimension k: polynomials per mask (1 here, so a row packs into one polynomial).
    pub glwe_dimension: usize,
    /// Polynomial size N: coefficients per polynomial, the most features a row can have.
    pub polynomial_size: usize,
    /// GLWE noise is TUniform over `[-2^b, 2^b]` (bounded, so noise bounds are exact).
    pub noise_bound_log2: u32,
    /// Ciphertext modulus bits (64: native u64 arithmetic).
    pub modulus_bits: u32,
}

impl LeveledParameters {
    /// `V1_8_PARAM_MESSAGE_2_CARRY_2_KS32_PBS_TUNIFORM_2M128`, the default since issue 19: the
    /// GLWE part of the classic 2_2 set (k = 1, N = 2048, TUniform(17), q = 2^64) with tfhe's
    /// KS32 atomic pattern (keyswitch to a 32-bit small LWE, n = 918), published 128-bit
    /// security and p-fail 2^-129.6. Same leveled arithmetic as the classic set; bootstraps
    /// measured 1.21x faster on 2 cores (`cargo bench --bench bootstrap`).
    pub fn tfhe_v1_8_message_2_carry_2_ks32() -> Self {
        let p = V1_8_PARAM_MESSAGE_2_CARRY_2_KS32_PBS_TUNIFORM_2M128;
        assert!(p.ciphertext_modulus.is_native_modulus());
        Self {
            name: "V1_8_PARAM_MESSAGE_2_CARRY_2_KS32_PBS_TUNIFORM_2M128".into(),
            glwe_dimension: p.glwe_dimension.0,
            polynomial_size: p.polynomial_size.0,
            noise_bound_log2: t_uniform_bound(p.glwe_noise_distribution),
            modulus_bits: 64,
        }
    }

    /// `V1_8_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128`: k = 1, N = 2048, TUniform(17),
    /// q = 2^64, published 128-bit security and p-fail 2^-129.6 for its bootstrap. The default
    /// before issue 19; models saved with it still load and bootstrap with it.
    pub fn tfhe_v1_8_message_2_carry_2() -> Self {
        let p = V1_8_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128;
        assert!(p.ciphertext_modulus.is_native_modulus());
        Self {
            name: "V1_8_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128".into(),
            glwe_dimension: p.glwe_dimension.0,
            polynomial_size: p.polynomial_size.0,
            noise_bound_log2: t_uniform_bound(p.glwe_noise_distribution),
            modulus_bits: 64,
        }
    }

    /// LWE dimension of a coefficient extracted from a GLWE: k·N.
    pub fn lwe_dimension(&self) -> usize {
        self.glwe_dimension * self.polynomial_size
    }

    /// Positions on a bootstrap's circle: the modulus switch before blind rotation maps the
    /// torus to `2N` positions.
    pub fn positions(&self) -> u32 {
        2 * self.polynomial_size as u32
    }

    /// log2 of one position in torus units (2^64 / 2N).
    pub fn position_log2(&self) -> u32 {
        64 - self.positions().trailing_zeros()
    }

    /// The whole tfhe set (keyswitch and bootstrap parameters), for models that bootstrap.
    ///
    /// # Errors
    /// `Error::Wire` when these are not a shipped set this build bootstraps with.
    pub fn bootstrap_parameters(&self) -> Result<BootstrapSet> {
        if *self == Self::tfhe_v1_8_message_2_carry_2_ks32() {
            Ok(BootstrapSet::KeySwitch32(
                V1_8_PARAM_MESSAGE_2_CARRY_2_KS32_PBS_TUNIFORM_2M128,
            ))
        } else if *self == Self::tfhe_v1_8_message_2_carry_2() {
            Ok(BootstrapSet::Classic(
                V1_8_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128,
            ))
        } else {
            Err(Error::Wire(format!(
                "no bootstrap parameters for {}",
                self.name
            )))
        }
    }

    /// The noise of one keyswitch + modulus switch + bootstrap, from tfhe's own noise formulas
    /// for this set (`core_crypto::commons::noise_formulas`): the keyswitch from `q = 2^64` to
    /// the set's keyswitch modulus (`2^64`, or `2^32` for KS32), the centered modulus switch
    /// from there to `2N`, and the bootstrap's output noise.
    ///
    /// # Errors
    /// As [`LeveledParameters::bootstrap_parameters`].
    pub fn bootstrap_noise(&self) -> Result<BootstrapNoise> {
        let p = self.bootstrap_parameters()?;
        let q = 2f64.powi(64);
        let ks_q = 2f64.powi(p.keyswitch_modulus_bits() as i32);
        let two_n = self.positions() as f64;
        // Variances are of torus fractions: one position is 1/2N of the torus.
        let to_positions = |variance: f64| variance.sqrt() * two_n;
        let small_n = p.lwe_dimension() as f64;
        let modulus_switch = to_positions(
            centered_binary_shifted_modulus_switch_additive_variance_impl(small_n, ks_q, two_n),
        );
        let keyswitch = to_positions(keyswitch_additive_variance_132_bits_security_tuniform_impl(
            self.lwe_dimension() as f64,
            small_n,
            2f64.powi(p.ks_base_log() as i32),
            p.ks_level() as f64,
            q,
            ks_q,
        ));
        let output = (pbs_variance_132_bits_security_tuniform_fft_mul_impl(
            small_n,
            p.glwe_dimension() as f64,
            p.polynomial_size() as f64,
            2f64.powi(p.pbs_base_log() as i32),
            p.pbs_level() as f64,
            53.0,
            q,
        ) * q
            * q)
            .sqrt();
        Ok(BootstrapNoise {
            modulus_switch_positions: modulus_switch,
            keyswitch_positions: keyswitch,
            output_std: output,
            small_lwe_dimension: p.lwe_dimension(),
        })
    }

    /// The shipped sets this build knows; parameters read from a blob must be one of them.
    pub fn known() -> Vec<Self> {
        vec![
            Self::tfhe_v1_8_message_2_carry_2_ks32(),
            Self::tfhe_v1_8_message_2_carry_2(),
        ]
    }

    /// The packing of features into one GLWE needs k = 1 and at most N features, and the
    /// parameters must be a known tfhe set (a blob cannot smuggle in its own).
    ///
    /// # Errors
    /// `Error::Wire` for an unknown parameter set; `Error::Compile` for no features, a GLWE
    /// dimension other than 1, or more than N features.
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

/// Standard deviations of the noise a bootstrapped lookup adds, from tfhe's noise formulas.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BootstrapNoise {
    /// The modulus switch to `2N` positions (centered, as shortint does it), in positions.
    pub modulus_switch_positions: f64,
    /// The keyswitch to the small LWE key, in positions.
    pub keyswitch_positions: f64,
    /// A bootstrap's output noise, in torus units (2^-64).
    pub output_std: f64,
    /// Dimension of the small LWE key the keyswitch goes to.
    pub small_lwe_dimension: usize,
}

impl BootstrapNoise {
    /// Total position noise at a lookup whose input already carries `input_std` (torus units).
    pub fn lookup_positions(&self, input_std: f64, position: f64) -> f64 {
        (self.modulus_switch_positions.powi(2)
            + self.keyswitch_positions.powi(2)
            + (input_std / position).powi(2))
        .sqrt()
    }
}

impl Default for LeveledParameters {
    fn default() -> Self {
        Self::tfhe_v1_8_message_2_carry_2_ks32()
    }
}

fn t_uniform_bound(d: DynamicDistribution<u64>) -> u32 {
    match d {
        DynamicDistribution::TUniform(t) => t.bound_log2(),
        // The sets are TUniform by name; a Gaussian here would break the exact bounds.
        DynamicDistribution::Gaussian(_) => unreachable!("a TUNIFORM set has TUniform noise"),
    }
}

/// A shipped set's bootstrapping part: tfhe's classic KS-PBS atomic pattern (64-bit
/// keyswitch), or its KS32 pattern (keyswitch to a small LWE on 32 bits, then the same
/// blind rotation).
#[derive(Debug, Clone, Copy)]
pub enum BootstrapSet {
    /// `ClassicPBSParameters` (shortint's standard atomic pattern).
    Classic(ClassicPBSParameters),
    /// `KeySwitch32PBSParameters` (shortint's KS32 atomic pattern).
    KeySwitch32(KeySwitch32PBSParameters),
}

impl BootstrapSet {
    // The shared dimensions come from tfhe's own accessors on `AtomicPatternParameters`.
    /// Small LWE dimension n (the keyswitch's output, the blind rotation's input).
    pub fn lwe_dimension(&self) -> usize {
        self.atomic_pattern().lwe_dimension().0
    }
    /// GLWE dimension k of the bootstrapping key.
    pub fn glwe_dimension(&self) -> usize {
        self.atomic_pattern().glwe_dimension().0
    }
    /// Polynomial size N of the bootstrapping key.
    pub fn polynomial_size(&self) -> usize {
        self.atomic_pattern().polynomial_size().0
    }
    /// log2 of the bootstrapping key's decomposition base.
    pub fn pbs_base_log(&self) -> usize {
        self.atomic_pattern().pbs_base_log().0
    }
    /// Levels of the bootstrapping key's decomposition.
    pub fn pbs_level(&self) -> usize {
        self.atomic_pattern().pbs_level().0
    }
    /// log2 of the keyswitching key's decomposition base.
    pub fn ks_base_log(&self) -> usize {
        self.atomic_pattern().ks_base_log().0
    }
    /// Levels of the keyswitching key's decomposition.
    pub fn ks_level(&self) -> usize {
        self.atomic_pattern().ks_level().0
    }
    /// Bits of the modulus the keyswitch lands in: 64, or 32 for KS32.
    pub fn keyswitch_modulus_bits(&self) -> u32 {
        match self {
            Self::Classic(_) => 64,
            Self::KeySwitch32(_) => 32,
        }
    }
    /// Bytes of one keyswitching key word (8, or 4 for KS32).
    pub fn keyswitch_word_bytes(&self) -> usize {
        self.keyswitch_modulus_bits() as usize / 8
    }
    /// tfhe's own description of the set (what shortint's keys are checked against).
    pub fn atomic_pattern(&self) -> AtomicPatternParameters {
        match *self {
            Self::Classic(p) => AtomicPatternParameters::from(p),
            Self::KeySwitch32(p) => AtomicPatternParameters::from(p),
        }
    }
}
