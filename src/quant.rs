//! Quantization: the per-feature input quantizer (calibrated on training rows, in raw units, so
//! the client needs no separate scaler) and symmetric weight quantization.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Bit widths of the integer model. Inputs are unsigned (`0..2^input_bits`), weights signed
/// (`-(2^(weight_bits-1)-1)..=2^(weight_bits-1)-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantization {
    /// Width of each quantized input feature, in bits (levels `0..2^input_bits`).
    pub input_bits: u32,
    /// Width of each quantized weight, in bits, sign included.
    pub weight_bits: u32,
}

impl Quantization {
    /// Default: 8-bit inputs and weights. On the shipped datasets this keeps quantized labels
    /// equal to float labels on at least 99% of test rows (see the tests and the README), and
    /// the encrypted output stays well inside the leveled noise budget.
    pub const DEFAULT_BITS: u32 = 8;

    /// The same width for inputs and weights.
    pub fn bits(bits: u32) -> Self {
        Self {
            input_bits: bits,
            weight_bits: bits,
        }
    }

    /// Checks that both widths are between 2 and 16 bits.
    ///
    /// # Errors
    ///
    /// `Error::Compile` if `input_bits` or `weight_bits` is outside `2..=16`.
    pub fn validate(&self) -> Result<()> {
        if !(2..=16).contains(&self.input_bits) || !(2..=16).contains(&self.weight_bits) {
            return Err(Error::Compile(format!(
                "quantization bits must be between 2 and 16, got inputs {} weights {}",
                self.input_bits, self.weight_bits
            )));
        }
        Ok(())
    }
}

impl Default for Quantization {
    fn default() -> Self {
        Self::bits(Self::DEFAULT_BITS)
    }
}

/// Maps each raw feature `x` to an integer level in `0..=max_level`. Uniform (linear models,
/// MLPs): `round((x - low) / step)`, clipping values outside `[low, low + step * max_level]`.
/// Binned (trees): where `edges[j]` is given, the level is the number of cut points `<= x`,
/// so a tree that splits at exactly those points compares levels instead of values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputQuantizer {
    /// Width of each level, in bits: levels run over `0..=2^bits - 1`.
    pub bits: u32,
    /// Per-feature value mapped to level 0, in raw units (`n_features`); 0 for binned features.
    pub low: Vec<f64>,
    /// Per-feature width of one level, in raw units (`n_features`, each > 0); 1 when binned.
    pub step: Vec<f64>,
    /// Per-feature sorted cut points (at most `max_level` each); empty for uniform features.
    #[serde(default)]
    pub edges: Vec<Vec<f64>>,
}

/// A quantized row and how many of its features were clipped into range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantizedRow {
    /// One level per feature (`n_features`), each in `0..=max_level`.
    pub values: Vec<u64>,
    /// How many features fell outside the calibrated range and were clamped (always 0 when
    /// binned).
    pub clipped: usize,
}

/// The `q` quantile (0..=1) of sorted values, linearly interpolated.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let at = q * (sorted.len() - 1) as f64;
    let (i, frac) = (at.floor() as usize, at - at.floor());
    let next = sorted[(i + 1).min(sorted.len() - 1)];
    sorted[i] + frac * (next - sorted[i])
}

impl InputQuantizer {
    /// Per-feature min/max calibration on raw training rows (`n_rows × n_features`).
    pub fn calibrate(train_raw: &ndarray::Array2<f64>, bits: u32) -> Self {
        Self::calibrate_clipped(train_raw, bits, 0.0)
    }

    /// Calibration that ignores the `tail` fraction (0..0.5) of training values at each end of
    /// every feature: a few glitch values (1e5 among values near 1) then no longer squeeze
    /// every ordinary value into one level; those values are clipped instead. `tail` 0 is
    /// min/max. A feature whose clipped range would be empty keeps its min/max.
    pub fn calibrate_clipped(train_raw: &ndarray::Array2<f64>, bits: u32, tail: f64) -> Self {
        let max_level = ((1u64 << bits) - 1) as f64;
        let mut low = Vec::with_capacity(train_raw.ncols());
        let mut step = Vec::with_capacity(train_raw.ncols());
        for column in train_raw.columns() {
            let mut sorted: Vec<f64> = column.to_vec();
            sorted.sort_by(f64::total_cmp);
            let (mut lo, mut hi) = match (sorted.first(), sorted.last()) {
                (Some(&a), Some(&b)) => (a, b),
                _ => (0.0, 0.0),
            };
            if tail > 0.0 && !sorted.is_empty() {
                let (qlo, qhi) = (quantile(&sorted, tail), quantile(&sorted, 1.0 - tail));
                if qhi > qlo {
                    (lo, hi) = (qlo, qhi);
                }
            }
            let span = hi - lo;
            low.push(lo);
            // A constant feature quantizes to 0; any positive step keeps the formula finite.
            step.push(if span > 0.0 && (span / max_level) > 0.0 {
                span / max_level
            } else {
                1.0
            });
        }
        Self {
            bits,
            low,
            step,
            edges: Vec::new(),
        }
    }

    /// Equal-frequency bins on raw training rows (`n_rows × n_features`), as histogram-based
    /// tree learners (LightGBM, XGBoost's `hist`) bin features: at most `2^bits - 1` cut points
    /// per feature, each halfway between two distinct training values, at the quantiles
    /// `i / 2^bits`. A feature with at most `2^bits` distinct values gets a cut between each
    /// pair, so a tree on its levels splits exactly where one on raw values would. Robust to
    /// outliers (they fill the top bin), and it reveals training quantiles to the client,
    /// never the model's thresholds.
    pub fn calibrate_bins(train_raw: &ndarray::Array2<f64>, bits: u32) -> Self {
        let max_level = (1usize << bits) - 1;
        let edges = train_raw
            .columns()
            .into_iter()
            .map(|column| {
                let mut sorted: Vec<f64> = column.to_vec();
                sorted.sort_by(f64::total_cmp);
                let mut distinct = sorted.clone();
                distinct.dedup();
                let between = |v: f64| {
                    // Halfway from v to the next distinct value (none above the largest).
                    let at = distinct.partition_point(|&u| u <= v);
                    distinct.get(at).map(|&next| v + (next - v) / 2.0)
                };
                let mut cuts: Vec<f64> = if distinct.len() <= max_level + 1 {
                    distinct
                        .windows(2)
                        .map(|w| w[0] + (w[1] - w[0]) / 2.0)
                        .collect()
                } else {
                    let n = sorted.len();
                    (1..=max_level)
                        .filter_map(|i| between(sorted[(i * n / (max_level + 1)).min(n - 1)]))
                        .collect()
                };
                cuts.retain(|c| c.is_finite());
                cuts.dedup();
                cuts
            })
            .collect();
        // Sorted, distinct and at most max_level per feature by construction.
        Self::binned(edges, bits).unwrap_or_else(|_| Self::calibrate(train_raw, bits))
    }

    /// A binned quantizer: feature `j`'s level is the number of `edges[j]` at or below it
    /// (`edges[j]` sorted, distinct, at most `2^bits - 1`). Errors if an edge list is too
    /// long, unsorted or not finite.
    ///
    /// # Errors
    ///
    /// `Error::Compile` if some feature's edges exceed `2^bits - 1` cut points, are not
    /// strictly increasing, or contain a non-finite value.
    pub fn binned(edges: Vec<Vec<f64>>, bits: u32) -> Result<Self> {
        let max_level = (1usize << bits) - 1;
        for (j, e) in edges.iter().enumerate() {
            if e.len() > max_level
                || e.iter().any(|v| !v.is_finite())
                || e.windows(2).any(|w| w[0] >= w[1])
            {
                return Err(Error::Compile(format!(
                    "feature {j}: {} cut points, sorted and finite, at most {max_level} at {bits} bits",
                    e.len()
                )));
            }
        }
        let d = edges.len();
        Ok(Self {
            bits,
            low: vec![0.0; d],
            step: vec![1.0; d],
            edges,
        })
    }

    /// The number of features a row must have.
    pub fn n_features(&self) -> usize {
        self.low.len()
    }

    /// The highest level, `2^bits - 1`.
    pub fn max_level(&self) -> u64 {
        (1u64 << self.bits) - 1
    }

    /// Whether features are binned at cut points (trees) rather than uniform.
    pub fn is_binned(&self) -> bool {
        !self.edges.is_empty()
    }

    /// Quantizes one finite raw row of the right length (callers check with `data::check_row`).
    pub fn quantize(&self, row: &[f64]) -> QuantizedRow {
        if self.is_binned() {
            let values = row
                .iter()
                .zip(&self.edges)
                .map(|(&x, e)| e.partition_point(|&cut| cut <= x) as u64)
                .collect();
            return QuantizedRow { values, clipped: 0 };
        }
        let max = self.max_level() as f64;
        let mut clipped = 0;
        let values = row
            .iter()
            .enumerate()
            .map(|(j, &x)| {
                let level = ((x - self.low[j]) / self.step[j]).round();
                if level < 0.0 || level > max {
                    clipped += 1;
                }
                level.clamp(0.0, max) as u64
            })
            .collect();
        QuantizedRow { values, clipped }
    }
}

/// Symmetric per-tensor quantization: returns integers in `±(2^(bits-1)-1)` and the scale such
/// that `value ≈ integer * scale`.
pub fn quantize_symmetric(values: &[f64], bits: u32) -> (Vec<i64>, f64) {
    let max_int = ((1i64 << (bits - 1)) - 1) as f64;
    let max_abs = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let scale = if max_abs > 0.0 {
        max_abs / max_int
    } else {
        1.0
    };
    let ints = values
        .iter()
        .map(|v| (v / scale).round().clamp(-max_int, max_int) as i64)
        .collect();
    (ints, scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn min_max_calibration_clips_and_counts() {
        let q = InputQuantizer::calibrate(&array![[0.0, 10.0], [2.55, 20.0]], 8);
        assert_eq!(q.quantize(&[1.0, 15.0]).values, [100, 128]);
        let out = q.quantize(&[-1.0, 99.0]);
        assert_eq!(out.values, [0, 255]);
        assert_eq!(out.clipped, 2);
        assert_eq!(
            InputQuantizer::calibrate_clipped(&array![[0.0], [1.0]], 8, 0.0),
            { InputQuantizer::calibrate(&array![[0.0], [1.0]], 8) }
        );
    }

    #[test]
    fn a_clipped_range_ignores_the_tails() {
        let mut column: Vec<f64> = (0..100).map(f64::from).collect();
        column.push(1e6);
        let x = ndarray::Array2::from_shape_vec((101, 1), column).unwrap();
        let q = InputQuantizer::calibrate_clipped(&x, 8, 0.05);
        let top = q.low[0] + q.step[0] * 255.0;
        assert!(top < 100.0, "{top}");
        assert_eq!(q.quantize(&[1e6]).clipped, 1);
    }

    #[test]
    fn bins_cut_between_distinct_values() {
        let x = array![[1.0], [2.0], [2.0], [5.0]];
        let q = InputQuantizer::calibrate_bins(&x, 4);
        assert_eq!(q.edges, [vec![1.5, 3.5]]);
        let levels: Vec<u64> = [0.0, 1.0, 1.5, 2.0, 3.5, 9.0]
            .iter()
            .map(|&v| q.quantize(&[v]).values[0])
            .collect();
        assert_eq!(levels, [0, 0, 1, 1, 2, 2]);
        // Many distinct values: at most 2^bits - 1 cuts, one glitch value in the top bin.
        let mut many: Vec<f64> = (0..200).map(|i| f64::from(i) / 100.0).collect();
        many.push(1e5);
        let q = InputQuantizer::calibrate_bins(
            &ndarray::Array2::from_shape_vec((201, 1), many).unwrap(),
            4,
        );
        assert_eq!(q.edges[0].len(), 15);
        assert!(q.edges[0].iter().all(|&e| e < 2.0));
        assert!(InputQuantizer::binned(vec![vec![2.0, 1.0]], 4).is_err());
    }

    #[test]
    fn symmetric_weights() {
        let (ints, scale) = quantize_symmetric(&[0.5, -1.0, 0.25], 8);
        assert_eq!(ints, [64, -127, 32]);
        assert!((scale - 1.0 / 127.0).abs() < 1e-12);
    }
}
