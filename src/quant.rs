//! Quantization: the per-feature input quantizer (calibrated on training rows, in raw units, so
//! the client needs no separate scaler) and symmetric weight quantization.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Bit widths of the integer model. Inputs are unsigned (`0..2^input_bits`), weights signed
/// (`-(2^(weight_bits-1)-1)..=2^(weight_bits-1)-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantization {
    pub input_bits: u32,
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

/// Maps each raw feature `x` to `round((x - low) / step)` in `0..=max_level`, clipping values
/// outside the calibrated range `[low, low + step * max_level]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputQuantizer {
    pub bits: u32,
    pub low: Vec<f64>,
    pub step: Vec<f64>,
}

/// A quantized row and how many of its features were clipped into range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantizedRow {
    pub values: Vec<u64>,
    pub clipped: usize,
}

impl InputQuantizer {
    /// Per-feature min/max calibration on raw training rows.
    pub fn calibrate(train_raw: &ndarray::Array2<f64>, bits: u32) -> Self {
        let max_level = ((1u64 << bits) - 1) as f64;
        let mut low = Vec::with_capacity(train_raw.ncols());
        let mut step = Vec::with_capacity(train_raw.ncols());
        for column in train_raw.columns() {
            let lo = column.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = column.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let span = hi - lo;
            low.push(lo);
            // A constant feature quantizes to 0; any step keeps the formula finite.
            step.push(if span > 0.0 { span / max_level } else { 1.0 });
        }
        Self { bits, low, step }
    }

    pub fn n_features(&self) -> usize {
        self.low.len()
    }

    pub fn max_level(&self) -> u64 {
        (1u64 << self.bits) - 1
    }

    /// Quantizes one finite raw row of the right length (callers check with `data::check_row`).
    pub fn quantize(&self, row: &[f64]) -> QuantizedRow {
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
