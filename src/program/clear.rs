//! The clear interpreter (Concrete ML's "disable"): runs a program on quantized integers and
//! returns exactly what decrypting the encrypted interpreter's output yields, label head
//! included.

use crate::error::Result;
use crate::fhe::label::top_labels;
use crate::program::{Program, Step};

impl Program {
    /// The clear interpreter up to (not including) step `end`: the values each step sees.
    /// `x` holds `n_inputs` quantized levels; an `end` past the last step runs them all.
    ///
    /// # Errors
    ///
    /// `Error::Input` if `x` does not have `n_inputs` values or one exceeds `2^input_bits - 1`.
    pub fn simulate_until(&self, x: &[u64], end: usize) -> Result<Vec<i64>> {
        self.check_input(x)?;
        let mut values: Vec<i64> = x.iter().map(|&v| v as i64).collect();
        for step in &self.steps[..end.min(self.steps.len())] {
            values = match step {
                Step::Linear(layer) => layer.apply(&values),
                Step::Lookup(layer) => layer.apply(&values),
                Step::Label(head) => top_labels(&values, head.top)
                    .into_iter()
                    .map(|label| label as i64)
                    .collect(),
            };
        }
        Ok(values)
    }

    /// The clear interpreter: the exact integers the encrypted path decrypts to. `x` holds
    /// `n_inputs` quantized levels; the result has [`Program::n_outputs`] scores or, for a
    /// program ending in a label head, its `top` class indices, best first.
    ///
    /// # Errors
    ///
    /// `Error::Input` if `x` does not have `n_inputs` values or one exceeds `2^input_bits - 1`.
    pub fn simulate(&self, x: &[u64]) -> Result<Vec<i64>> {
        self.simulate_until(x, self.steps.len())
    }

    /// The clear interpreter's scores: every step but the label head. `x` as in
    /// [`Program::simulate`]; the result has [`Program::n_outputs`] integers.
    ///
    /// # Errors
    ///
    /// As [`Program::simulate`].
    pub fn simulate_scores(&self, x: &[u64]) -> Result<Vec<i64>> {
        self.simulate_until(x, self.score_steps().len())
    }
}
