//! The encoding plan: where messages sit in the 64-bit torus (`delta`), how many bits of each
//! input body travel, and how many bits of each output coefficient come back.
//!
//! Leveled programs (linear models): all noise is bounded, so the plan proves exact decryption
//! with probability 1:
//! - encryption noise: |e| <= 2^b per input (tfhe's TUniform(b) is bounded);
//! - input body rounding to `q_in` bits: <= 2^(63 - q_in) per input;
//! - a linear layer multiplies both by at most `L1` (the largest weight-row L1 norm);
//! - output modulus switch to `q_out` bits: <= (n + 1) * 2^(63 - q_out) (n mask coefficients
//!   under a binary key, plus the body).
//!
//! The plan picks `delta = 2^d` with `max|score| * delta < 2^62`, then
//! `L1 * 2^b <= delta/16`, `L1 * 2^(63-q_in) <= delta/16` and `(n+1) * 2^(63-q_out) <= delta/8`,
//! so the total error stays under `delta/4`, half of the `delta/2` that rounding tolerates.
//!
//! Bootstrapped programs (linear, lookup, linear, ...): each lookup's input is placed in
//! position units of the bootstrap (2^64 / 2N), so the leveled layer before it needs no range
//! at all (everything is modulo 2^64, as the clear twin's positions are modulo 2N); the
//! leveled errors are kept under 1/16 of a position. What bootstrapping adds is Gaussian, with
//! the standard deviations of tfhe's noise formulas: see [`EncodingPlan::noise`].

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fhe::label::{compared_max_abs, pairs, CompareRange, LabelHead, OutputMode};
use crate::fhe::stats::two_sided_tail;
use crate::fhe::LeveledParameters;
use crate::program::{LinearLayer, LookupLayer, Program, Step};

/// Where a program's messages sit in the 64-bit torus and how many bits of each ciphertext
/// travel, derived from the program so that decryption is exact (leveled) or fails with the
/// probability [`EncodingPlan::noise`] reports (bootstrapped): see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodingPlan {
    /// The tfhe parameter set.
    pub params: LeveledParameters,
    /// log2 of the scaling factor delta applied to input messages.
    pub delta_log2: u32,
    /// Bits of each input body sent (the top bits of the 64-bit body, rounded).
    pub input_body_bits: u32,
    /// log2 of delta for the outputs (equal to `delta_log2` for leveled programs).
    pub output_delta_log2: u32,
    /// Bits of each output coefficient returned (after modulus switching).
    pub output_bits: u32,
}

/// How a bootstrapped lookup layer's values are encoded: its input at `input_delta` per unit,
/// its outputs at `output_delta` per unit (what the next layer needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupEncoding {
    /// Torus units (2^-64) per unit of the lookup's input.
    pub input_delta: u64,
    /// Torus units (2^-64) per unit of the lookup's outputs.
    pub output_delta: u64,
}

/// What decryption is expected to get wrong, from tfhe's noise formulas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoiseReport {
    /// Standard deviation of the position each lookup layer reads, in positions (0 if none).
    pub lookup_sigma_positions: Vec<f64>,
    /// Standard deviation of a decrypted score, in score units (0 for leveled programs, whose
    /// error is bounded).
    pub score_sigma: f64,
    /// Probability that one decrypted score differs from the clear twin's given exact lookups.
    pub score_error_probability: f64,
}

/// Bits of the largest |score| (or, in label mode with several outputs, |difference of two
/// scores|), refusing what the 64-bit encoding cannot hold.
fn score_message_bits(
    bounds: &[(i64, i64)],
    compared: Option<u64>,
    output: OutputMode,
) -> Result<u32> {
    let max_abs = match output {
        OutputMode::Label | OutputMode::TopK(_) => {
            compared.unwrap_or_else(|| compared_max_abs(bounds))
        }
        OutputMode::Scores => bounds
            .iter()
            .map(|&(lo, hi)| lo.unsigned_abs().max(hi.unsigned_abs()))
            .max()
            .unwrap_or(0),
    };
    let message_bits = ceil_log2(max_abs + 1);
    if message_bits > 40 {
        return Err(Error::Compile(format!(
            "scores reach {max_abs}, too large for the 64-bit encoding; use fewer bits"
        )));
    }
    Ok(message_bits)
}

/// Smallest `k` with `2^k >= x`.
fn ceil_log2(x: u64) -> u32 {
    if x <= 1 {
        0
    } else {
        64 - (x - 1).leading_zeros()
    }
}

impl EncodingPlan {
    /// Plans a program for the output it returns ([`Program::output`]): see
    /// [`EncodingPlan::for_output`].
    ///
    /// # Errors
    /// As [`EncodingPlan::for_output`].
    pub fn for_program(params: LeveledParameters, program: &Program) -> Result<Self> {
        Self::for_output(params, program, program.output())
    }

    /// Plans a program's scores (its label head, if any, is ignored) for `output`: one linear
    /// step is leveled; linear, lookup, linear, ... bootstraps. In label and top-K modes the
    /// scores' range covers the differences the argmax compares.
    ///
    /// # Errors
    /// `Error::Compile` when the scores need more than 40 bits, the first layer's weights
    /// are too large for the noise, the features do not fit, or a bootstrapped program's
    /// shape or lookup scales do not fit the set; `Error::Wire` for an unknown parameter set
    /// or, for a bootstrapped program, one without bootstrap parameters.
    pub fn for_output(
        params: LeveledParameters,
        program: &Program,
        output: OutputMode,
    ) -> Result<Self> {
        let message_bits = score_message_bits(
            &program.output_bounds(),
            Some(program.compared_max_abs()),
            output,
        )?;
        if let Some(layer) = program.as_linear() {
            return Self::for_linear(params, layer, message_bits);
        }
        Self::for_bootstrapped(params, program, message_bits)
    }

    /// Plans the encoding of a linear layer whose outputs need `message_bits` (signed).
    ///
    /// # Errors
    /// `Error::Wire` for an unknown parameter set; `Error::Compile` for no features, more
    /// than N, or weights whose L1 norm times the noise exceeds `delta/16`.
    pub fn for_linear(
        params: LeveledParameters,
        layer: &LinearLayer,
        message_bits: u32,
    ) -> Result<Self> {
        params.check_features(layer.n_inputs)?;
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
            output_delta_log2: delta_log2,
            output_bits,
        })
    }

    /// The lookup layers' encodings, checking the program has the shape the bootstrapped
    /// interpreter runs: linear, then (lookup, linear) pairs, with scales that are exact in
    /// position units.
    ///
    /// # Errors
    /// `Error::Compile` when the steps do not alternate linear and lookup (starting and
    /// ending linear), a lookup's positions or scale do not fit the parameter set, or the
    /// first lookup's scale is not a power of two.
    pub fn lookup_encodings(
        params: &LeveledParameters,
        program: &Program,
        output_delta_log2: u32,
    ) -> Result<Vec<LookupEncoding>> {
        let steps = program.score_steps();
        let shape_ok = steps.len() >= 3
            && steps.len() % 2 == 1
            && steps.iter().enumerate().all(|(i, s)| match s {
                Step::Linear(_) => i % 2 == 0,
                Step::Lookup(_) => i % 2 == 1,
                Step::Label(_) => false,
            });
        if !shape_ok {
            return Err(Error::Compile(
                "a bootstrapped program alternates linear and lookup steps, starting and ending linear".into(),
            ));
        }
        let position_log2 = params.position_log2();
        let lookups: Vec<&LookupLayer> = program.lookup_layers().collect();
        let input_delta = |l: &LookupLayer| -> Result<u64> {
            if l.positions != params.positions() || l.scale_shift >= position_log2 {
                return Err(Error::Compile(format!(
                    "a lookup over {} positions with scale 2^-{} does not fit {} ({} positions)",
                    l.positions,
                    l.scale_shift,
                    params.name,
                    params.positions()
                )));
            }
            (l.scale_num as u64)
                .checked_shl(position_log2 - l.scale_shift)
                .filter(|d| {
                    d.leading_zeros() >= 1
                        && d >> (position_log2 - l.scale_shift) == l.scale_num as u64
                })
                .ok_or_else(|| Error::Compile("lookup scale overflows the torus".into()))
        };
        let mut out = Vec::with_capacity(lookups.len());
        for (i, l) in lookups.iter().enumerate() {
            let output_delta = match lookups.get(i + 1) {
                Some(next) => input_delta(next)?,
                None => 1u64 << output_delta_log2,
            };
            out.push(LookupEncoding {
                input_delta: input_delta(l)?,
                output_delta,
            });
        }
        if !out[0].input_delta.is_power_of_two() {
            return Err(Error::Compile(
                "the first lookup's scale must be a power of two (the client encrypts at 2^k)"
                    .into(),
            ));
        }
        Ok(out)
    }

    fn for_bootstrapped(
        params: LeveledParameters,
        program: &Program,
        message_bits: u32,
    ) -> Result<Self> {
        params.check_features(program.n_inputs)?;
        params.bootstrap_parameters()?;
        // Scores are signed and their noise is Gaussian, not bounded: the largest delta that
        // keeps every possible score inside the signed 64-bit torus leaves the most room.
        let output_delta_log2 = 63 - message_bits;
        let encodings = Self::lookup_encodings(&params, program, output_delta_log2)?;
        let delta_log2 = encodings[0].input_delta.trailing_zeros();
        let first = program.linear_layers().next().expect("checked shape");
        // Leveled errors before the first lookup stay under 1/16 of a position (2^(p-4)):
        // encryption L1 * 2^b <= 2^(p-5) and input rounding L1 * 2^(63-q_in) <= 2^(p-5).
        let l1_bits = ceil_log2(first.max_row_l1().max(1));
        let position_log2 = params.position_log2();
        if l1_bits + params.noise_bound_log2 + 5 > position_log2 {
            return Err(Error::Compile(format!(
                "first-layer weights too large: L1 norm 2^{l1_bits} times noise 2^{} exceeds 1/32 position",
                params.noise_bound_log2
            )));
        }
        let input_body_bits = (68 + l1_bits).saturating_sub(position_log2).clamp(1, 64);
        let n_bits = ceil_log2(params.lwe_dimension() as u64 + 1);
        let output_bits = (66 + n_bits).saturating_sub(output_delta_log2).clamp(1, 64);
        Ok(Self {
            params,
            delta_log2,
            input_body_bits,
            output_delta_log2,
            output_bits,
        })
    }

    /// The label head returning the `top` best labels of `program`'s scores under this plan
    /// (planned for label or top-K output): compared values from the scores' exact bounds,
    /// their leveled error from the plan (linear programs) or their Gaussian noise
    /// (bootstrapped ones). A program's `Step::Label` must be exactly this.
    ///
    /// # Errors
    /// As [`LabelHead::new`] and [`LabelHead::with_top`], and those of
    /// [`EncodingPlan::noise`] for bootstrapped programs.
    pub fn label_head(&self, program: &Program, top: usize) -> Result<LabelHead> {
        let plan = self;
        let bounds = program.output_bounds();
        let pairwise = bounds.len() > 1;
        let classes = if pairwise { bounds.len() } else { 2 };
        let max_abs = program.compared_max_abs();
        let delta = 2f64.powi(plan.output_delta_log2 as i32);
        let (bounded_error, sigma) = match program.as_linear() {
            Some(layer) => {
                let per_unit = plan.leveled_error_per_weight() as f64;
                let l1 = if !pairwise {
                    layer.max_row_l1()
                } else {
                    pairs(classes)
                        .map(|(i, j)| {
                            layer
                                .row(i)
                                .iter()
                                .zip(layer.row(j))
                                .map(|(a, b)| (a - b).unsigned_abs())
                                .sum::<u64>()
                        })
                        .max()
                        .unwrap_or(0)
                };
                (l1 as f64 * per_unit / delta, 0.0)
            }
            None => {
                let sigma = plan.noise(program)?.score_sigma;
                (
                    0.0,
                    if !pairwise {
                        sigma
                    } else {
                        sigma * 2f64.sqrt()
                    },
                )
            }
        };
        LabelHead::new(
            &plan.params,
            classes,
            pairwise,
            plan.output_delta_log2,
            CompareRange {
                max_abs,
                bounded_error,
                sigma,
            },
        )
        .and_then(|head| head.with_top(top))
    }

    /// Bound on the leveled error of an output per unit of its weight row's L1 norm, before
    /// the output modulus switch (encryption noise and input rounding), in 2^-64 units.
    pub fn leveled_error_per_weight(&self) -> u64 {
        let rin = if self.input_body_bits >= 64 {
            0
        } else {
            1u64 << (63 - self.input_body_bits)
        };
        (1u64 << self.params.noise_bound_log2) + rin
    }

    /// Expected decryption errors from the noise bootstrapping adds (none for leveled plans).
    ///
    /// # Errors
    /// For a bootstrapped program, `Error::Wire` when the parameter set has no bootstrap
    /// parameters, and as [`EncodingPlan::lookup_encodings`].
    pub fn noise(&self, program: &Program) -> Result<NoiseReport> {
        if program.as_linear().is_some() {
            return Ok(NoiseReport {
                lookup_sigma_positions: Vec::new(),
                score_sigma: 0.0,
                score_error_probability: 0.0,
            });
        }
        let noise = self.params.bootstrap_noise()?;
        let position = 2f64.powi(self.params.position_log2() as i32);
        let n_lookups =
            Self::lookup_encodings(&self.params, program, self.output_delta_log2)?.len();
        let layers: Vec<&LinearLayer> = program.linear_layers().collect();
        let l2 = |l: &LinearLayer| {
            (0..l.n_outputs)
                .map(|o| {
                    l.row(o)
                        .iter()
                        .map(|&w| (w as f64).powi(2))
                        .sum::<f64>()
                        .sqrt()
                })
                .fold(0.0, f64::max)
        };
        let mut lookup_sigma_positions = Vec::with_capacity(n_lookups);
        for (i, layer) in layers.iter().take(n_lookups).enumerate() {
            // Inputs of the first lookup are leveled (bounded, under 1/16 position); later
            // ones are weighted sums of bootstrap outputs.
            let input_std = if i == 0 {
                0.0
            } else {
                noise.output_std * l2(layer)
            };
            lookup_sigma_positions.push(noise.lookup_positions(input_std, position));
        }
        let delta = 2f64.powi(self.output_delta_log2 as i32);
        let score_std = noise.output_std * l2(layers[layers.len() - 1]);
        // The output modulus switch adds a bounded error of at most delta/8.
        Ok(NoiseReport {
            lookup_sigma_positions,
            score_sigma: score_std / delta,
            score_error_probability: two_sided_tail((delta / 2.0 - delta / 8.0) / score_std),
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
        let bits = score_message_bits(&bounds, None, OutputMode::Scores).unwrap();
        let plan = EncodingPlan::for_linear(LeveledParameters::default(), &layer, bits).unwrap();
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
