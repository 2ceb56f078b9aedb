//! The leveled encoding plan: where the message sits in the 64-bit torus (`delta`), how many
//! bits of each input body travel, and how many bits of each output coefficient come back.
//!
//! All noise here is bounded, so the plan proves exact decryption with probability 1:
//! - encryption noise: |e| <= 2^b per input (tfhe's TUniform(b) is bounded);
//! - input body rounding to `q_in` bits: <= 2^(63 - q_in) per input;
//! - a linear layer multiplies both by at most `L1` (the largest weight-row L1 norm);
//! - output modulus switch to `q_out` bits: <= (n + 1) * 2^(63 - q_out) (n mask coefficients
//!   under a binary key, plus the body).
//!
//! The plan picks `delta = 2^d` with `max|score| * delta < 2^62`, then
//! `L1 * 2^b <= delta/16`, `L1 * 2^(63-q_in) <= delta/16` and `(n+1) * 2^(63-q_out) <= delta/8`,
//! so the total error stays under `delta/4`, half of the `delta/2` that rounding tolerates.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fhe::LeveledParameters;
use crate::program::LinearLayer;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeveledPlan {
    pub params: LeveledParameters,
    /// log2 of the scaling factor delta applied to messages.
    pub delta_log2: u32,
    /// Bits of each input body sent (the top bits of the 64-bit body, rounded).
    pub input_body_bits: u32,
    /// Bits of each output coefficient returned (after modulus switching).
    pub output_bits: u32,
}

/// Smallest `k` with `2^k >= x`.
fn ceil_log2(x: u64) -> u32 {
    if x <= 1 {
        0
    } else {
        64 - (x - 1).leading_zeros()
    }
}

impl LeveledPlan {
    /// Plans the encoding of a linear layer whose outputs lie in `bounds`.
    pub fn for_linear(
        params: LeveledParameters,
        layer: &LinearLayer,
        bounds: &[(i64, i64)],
    ) -> Result<Self> {
        params.check_features(layer.n_inputs)?;
        let max_abs = bounds
            .iter()
            .map(|&(lo, hi)| lo.unsigned_abs().max(hi.unsigned_abs()))
            .max()
            .unwrap_or(0);
        let message_bits = ceil_log2(max_abs + 1);
        if message_bits > 40 {
            return Err(Error::Compile(format!(
                "scores reach {max_abs}, too large for the 64-bit leveled encoding; use fewer bits"
            )));
        }
        let delta_log2 = 62 - message_bits;
        let l1_bits = ceil_log2(layer.max_row_l1().max(1));
        if l1_bits + params.noise_bound_log2 + 4 > delta_log2 {
            return Err(Error::Compile(format!(
                "weights too large: L1 norm 2^{l1_bits} times noise 2^{} exceeds delta/16 = 2^{}; use fewer bits",
                params.noise_bound_log2,
                delta_log2 - 4
            )));
        }
        // 63 - q_in + l1_bits <= delta_log2 - 4
        let input_body_bits = (67 + l1_bits).saturating_sub(delta_log2).clamp(1, 64);
        // (n + 1) <= 2^n_bits; 63 - q_out + n_bits <= delta_log2 - 3
        let n_bits = ceil_log2(params.lwe_dimension() as u64 + 1);
        let output_bits = (66 + n_bits).saturating_sub(delta_log2).clamp(1, 64);
        Ok(Self {
            params,
            delta_log2,
            input_body_bits,
            output_bits,
        })
    }

    /// Bound on the error of a decrypted output, in units of 2^-64, and delta: the tests check
    /// `bound < delta / 2` and the plan guarantees `bound <= delta / 4`.
    pub fn error_bound(&self, max_row_l1: u64) -> (u128, u128) {
        let l1 = max_row_l1 as u128;
        let enc = l1 << self.params.noise_bound_log2;
        let rin = if self.input_body_bits >= 64 {
            0
        } else {
            l1 << (63 - self.input_body_bits)
        };
        let rout = if self.output_bits >= 64 {
            0
        } else {
            (self.params.lwe_dimension() as u128 + 1) << (63 - self.output_bits)
        };
        (enc + rin + rout, 1u128 << self.delta_log2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceil_log2_values() {
        assert_eq!(ceil_log2(0), 0);
        assert_eq!(ceil_log2(1), 0);
        assert_eq!(ceil_log2(2), 1);
        assert_eq!(ceil_log2(3), 2);
        assert_eq!(ceil_log2(2049), 12);
    }

    #[test]
    fn plan_bounds_error_below_quarter_delta() {
        let layer = LinearLayer::new(30, 1, vec![127; 30], vec![-5000]).unwrap();
        let bounds = layer.bounds(&vec![(0, 255); 30]);
        let plan = LeveledPlan::for_linear(LeveledParameters::default(), &layer, &bounds).unwrap();
        let (err, delta) = plan.error_bound(layer.max_row_l1());
        assert!(err <= delta / 4, "{err} > {delta}/4");
        assert!(plan.input_body_bits < 64 && plan.output_bits < 64);
        let max = bounds
            .iter()
            .map(|b| b.0.abs().max(b.1.abs()))
            .max()
            .unwrap() as u128;
        assert!(max * delta < 1u128 << 62);
    }
}
