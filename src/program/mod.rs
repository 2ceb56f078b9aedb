//! The integer program every model compiles to (leveled linear layers, table lookups by
//! programmable bootstrapping, and in label and top-K modes the label head), and its three
//! interpreters side by side, held equal by tests on whole test sets:
//! - [`clear`]: `Program::simulate`, the exact integers decryption yields (Concrete ML's
//!   "disable");
//! - [`noisy`]: the clear twin with the noise tfhe's formulas give each bootstrap ("simulate");
//! - [`encrypted`]: the same steps on ciphertexts, what the server runs ("execute").
//!
//! [`decode`] turns a program's outputs into a prediction on the client.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fhe::label::{label_bits, LabelHead, OutputMode, MAX_LABEL_CLASSES, MAX_LEVELS};

pub mod clear;
pub mod decode;
pub mod encrypted;
pub mod noisy;

pub use decode::{Decoder, Link, OutputKind, Prediction};

/// A leveled linear map `y = W x + b` on integers: `W` is `n_outputs × n_inputs`, row-major.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinearLayer {
    /// Length of the input vector `x`.
    pub n_inputs: usize,
    /// Length of the output vector `y`.
    pub n_outputs: usize,
    /// Integer weights `W`, `n_outputs × n_inputs`, row-major (row `o` feeds output `o`).
    pub weights: Vec<i64>,
    /// Integer bias `b`, one per output (`n_outputs`), in the same units as `W x`.
    pub bias: Vec<i64>,
    /// Groups of inputs of which at most one is non-zero on any row, each input in one group
    /// at most: a tree's leaf lookups (one path is taken). They tighten
    /// [`LinearLayer::bounds`], so the scores' encoding keeps the bits a forest's loose sum
    /// of every leaf would waste.
    #[serde(default)]
    pub exclusive: Vec<Vec<usize>>,
}

impl LinearLayer {
    /// A layer from its shape, row-major weights (`n_outputs × n_inputs`) and biases
    /// (`n_outputs`).
    ///
    /// # Errors
    ///
    /// `Error::Compile` if either dimension is 0, or `weights` or `bias` has the wrong length.
    pub fn new(
        n_inputs: usize,
        n_outputs: usize,
        weights: Vec<i64>,
        bias: Vec<i64>,
    ) -> Result<Self> {
        if n_inputs == 0 || n_outputs == 0 {
            return Err(Error::Compile(
                "a linear layer needs inputs and outputs".into(),
            ));
        }
        if weights.len() != n_inputs * n_outputs || bias.len() != n_outputs {
            return Err(Error::Compile(format!(
                "linear layer {n_outputs}×{n_inputs} given {} weights and {} biases",
                weights.len(),
                bias.len()
            )));
        }
        Ok(Self {
            n_inputs,
            n_outputs,
            weights,
            bias,
            exclusive: Vec::new(),
        })
    }

    /// The same layer, told that at most one input of each group is non-zero on any row.
    ///
    /// # Errors
    /// `Error::Compile` if a group names an input out of range, or two groups share one.
    pub fn with_exclusive(mut self, groups: Vec<Vec<usize>>) -> Result<Self> {
        self.exclusive = groups;
        self.check_exclusive()?;
        Ok(self)
    }

    fn check_exclusive(&self) -> Result<()> {
        let mut seen = vec![false; self.n_inputs];
        for &i in self.exclusive.iter().flatten() {
            match seen.get_mut(i) {
                Some(s) if !*s => *s = true,
                _ => {
                    return Err(Error::Compile(format!(
                        "exclusive input {i} out of range or in two groups ({} inputs)",
                        self.n_inputs
                    )))
                }
            }
        }
        Ok(())
    }

    /// The weights of one output (`n_inputs` long). Panics if `output >= n_outputs`.
    pub fn row(&self, output: usize) -> &[i64] {
        &self.weights[output * self.n_inputs..(output + 1) * self.n_inputs]
    }

    /// Largest L1 norm of a weight row: bounds how much input noise one output accumulates.
    pub fn max_row_l1(&self) -> u64 {
        (0..self.n_outputs)
            .map(|o| self.row(o).iter().map(|w| w.unsigned_abs()).sum())
            .max()
            .unwrap_or(0)
    }

    /// Computes `W x + b` in the clear: `x` has `n_inputs` values, the result `n_outputs`.
    pub fn apply(&self, x: &[i64]) -> Vec<i64> {
        (0..self.n_outputs)
            .map(|o| {
                self.row(o)
                    .iter()
                    .zip(x)
                    .fold(self.bias[o], |acc, (w, v)| acc + w * v)
            })
            .collect()
    }

    /// Output interval for inputs in the given per-input intervals: exact without exclusive
    /// groups; a group whose inputs' intervals all hold 0 (at most one of them is non-zero)
    /// adds the widest of its terms instead of their sum.
    pub fn bounds(&self, inputs: &[(i64, i64)]) -> Vec<(i64, i64)> {
        let mut grouped = vec![false; self.n_inputs];
        let groups: Vec<&Vec<usize>> = self
            .exclusive
            .iter()
            .filter(|g| {
                g.iter().all(|&i| {
                    i < self.n_inputs && inputs.get(i).is_some_and(|&(a, b)| a <= 0 && 0 <= b)
                })
            })
            .collect();
        for &i in groups.iter().copied().flatten() {
            grouped[i] = true;
        }
        (0..self.n_outputs)
            .map(|o| {
                let row = self.row(o);
                let term = |i: usize| {
                    let (a, b) = inputs.get(i).copied().unwrap_or((0, 0));
                    let (p, q) = (row[i] * a, row[i] * b);
                    (p.min(q), p.max(q))
                };
                let mut out = (self.bias[o], self.bias[o]);
                for i in (0..self.n_inputs).filter(|&i| !grouped[i]) {
                    let (p, q) = term(i);
                    out = (out.0 + p, out.1 + q);
                }
                for group in &groups {
                    let (p, q) = group
                        .iter()
                        .map(|&i| term(i))
                        .fold((0, 0), |(p, q), (a, b)| (p.min(a), q.max(b)));
                    out = (out.0 + p, out.1 + q);
                }
                out
            })
            .collect()
    }
}

/// A table one programmable bootstrap evaluates: a piecewise-constant function of a value's
/// position on the bootstrap's circle of `positions` (2N) positions, whose second half is the
/// negacyclic mirror of the first.
///
/// Entry `q` of the table (the position `window_start + q`, `q < N`) holds the sum of the
/// `steps` increments at or below that position: a ReLU clipped to 7 levels is 7 steps of +1.
/// A position `p` with `d = (p - window_start) mod 2N` reads `T[d]` when `d < N` and
/// `mirror - T[d - N]` otherwise: that is what a bootstrap computes (negacyclic rotation, plus
/// a constant `mirror/2` added around it), so the clear twin and the ciphertexts agree on every
/// position, in range or not.
///
/// One bootstrap can read the rotated table at several offsets: `reads` gives one output per
/// offset, `read(p + offset)` (a tree's comparisons of one feature against several thresholds
/// cost one bootstrap).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableFunction {
    /// The position of table entry 0 on the circle (at most `2N` from 0; positions wrap
    /// mod `2N`).
    pub window_start: i64,
    /// `(position, increment)`, ascending positions.
    pub steps: Vec<(i64, i64)>,
    /// Offsets read, each in `0..N`; most lookups read `[0]`.
    pub reads: Vec<i64>,
}

/// Table lookups evaluated by programmable bootstrapping, one bootstrap per input value. A
/// value `z` sits at position `p = round_half_up(z * scale_num / 2^scale_shift)` on a circle
/// of `positions` positions; each neuron's table maps it to one output per read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupLayer {
    /// Positions on the circle, `2N` for polynomial size `N`: a power of two, at least 4.
    pub positions: u32,
    /// Numerator of the value-to-position scale, in `1..=MAX_SCALE_NUM`.
    pub scale_num: i64,
    /// The scale's denominator as a power of two, in bits (at most `MAX_SCALE_SHIFT`).
    pub scale_shift: u32,
    /// Past the half circle a table reads `mirror - T`.
    pub mirror: i64,
    /// One table per input value, in order (one bootstrap each).
    pub neurons: Vec<TableFunction>,
}

/// Limits on lookup layers read from blobs (so interpreters cannot overflow).
pub const MAX_TABLE_VALUE: i64 = 1 << 20;
/// Largest [`LookupLayer::scale_num`] a valid program may use.
pub const MAX_SCALE_NUM: i64 = 1 << 20;
/// Largest [`LookupLayer::scale_shift`] a valid program may use, in bits.
pub const MAX_SCALE_SHIFT: u32 = 40;

impl TableFunction {
    /// A ReLU-like staircase: `+1` at each of `thresholds`, read once.
    pub fn staircase(window_start: i64, thresholds: &[i64]) -> Self {
        Self {
            window_start,
            steps: thresholds.iter().map(|&t| (t, 1)).collect(),
            reads: vec![0],
        }
    }
}

impl LookupLayer {
    /// The position of value `z` on the circle, in `0..positions`.
    pub fn position(&self, z: i64) -> i64 {
        let scaled = z as i128 * self.scale_num as i128;
        let rounded = if self.scale_shift == 0 {
            scaled
        } else {
            (scaled + (1i128 << (self.scale_shift - 1))) >> self.scale_shift
        };
        rounded.rem_euclid(self.positions as i128) as i64
    }

    /// The table entry `T[q]` of a neuron, `q` in `0..positions/2`.
    pub fn table_entry(&self, neuron: &TableFunction, q: i64) -> i64 {
        let at = neuron.window_start + q;
        neuron
            .steps
            .iter()
            .take_while(|s| s.0 <= at)
            .map(|s| s.1)
            .sum()
    }

    /// What the bootstrap returns for a neuron at position `p`.
    pub fn read(&self, neuron: &TableFunction, p: i64) -> i64 {
        let two_n = self.positions as i64;
        let half = two_n / 2;
        let d = (p - neuron.window_start).rem_euclid(two_n);
        if d < half {
            self.table_entry(neuron, d)
        } else {
            self.mirror - self.table_entry(neuron, d - half)
        }
    }

    /// Outputs: every neuron's reads, in order.
    pub fn n_outputs(&self) -> usize {
        self.neurons.iter().map(|n| n.reads.len()).sum()
    }

    /// The clear lookup: one value per neuron in `z`, [`LookupLayer::n_outputs`] values out
    /// (each neuron's reads, in order), exactly what the bootstraps decrypt to.
    pub fn apply(&self, z: &[i64]) -> Vec<i64> {
        self.neurons
            .iter()
            .zip(z)
            .flat_map(|(neuron, &v)| {
                let p = self.position(v);
                neuron.reads.iter().map(move |&r| self.read(neuron, p + r))
            })
            .collect()
    }

    /// Every value a table of this layer can return (both halves of the circle).
    pub fn output_bounds(&self) -> (i64, i64) {
        self.neuron_bounds()
            .into_iter()
            .fold((i64::MAX, i64::MIN), |(lo, hi), (a, b)| {
                (lo.min(a), hi.max(b))
            })
    }

    /// Each neuron's `(min, max)` output over the whole circle (its table and the mirrored
    /// half), one per neuron: a tree's leaf tables differ in range, so the scores they add up
    /// to are bounded by their own ranges, not the widest table's.
    pub fn neuron_bounds(&self) -> Vec<(i64, i64)> {
        self.neurons
            .iter()
            .map(|neuron| {
                let mut value = 0i64;
                let (mut t_lo, mut t_hi) = (0i64, 0i64);
                for &(_, inc) in &neuron.steps {
                    value += inc;
                    t_lo = t_lo.min(value);
                    t_hi = t_hi.max(value);
                }
                (t_lo.min(self.mirror - t_hi), t_hi.max(self.mirror - t_lo))
            })
            .collect()
    }

    fn validate(&self, k: usize, width: usize) -> Result<()> {
        let bad = |m: String| Err(Error::Compile(format!("step {k}: {m}")));
        if self.neurons.len() != width {
            return bad(format!(
                "{} lookups after {width} values",
                self.neurons.len()
            ));
        }
        if !self.positions.is_power_of_two() || self.positions < 4 {
            return bad(format!(
                "{} positions is not a power of two",
                self.positions
            ));
        }
        if !(1..=MAX_SCALE_NUM).contains(&self.scale_num) || self.scale_shift > MAX_SCALE_SHIFT {
            return bad("position scale out of range".into());
        }
        let span = self.positions as i64;
        let half = span / 2;
        if self.mirror.abs() > MAX_TABLE_VALUE {
            return bad(format!("mirror constant {}", self.mirror));
        }
        for neuron in &self.neurons {
            let total: i64 = neuron.steps.iter().map(|s| s.1.abs()).sum();
            if neuron.steps.len() > half as usize
                || neuron.steps.windows(2).any(|w| w[0].0 > w[1].0)
                || neuron.window_start.abs() > span
                || neuron.steps.iter().any(|s| s.0.abs() > 4 * span)
                || total > MAX_TABLE_VALUE
                || neuron.reads.is_empty()
                || neuron.reads.len() > half as usize
                || neuron.reads.iter().any(|&r| !(0..half).contains(&r))
            {
                return bad(
                    "a table needs ascending steps near its window, bounded values, and reads within the half circle".into(),
                );
            }
        }
        Ok(())
    }
}

/// One step of the program: leveled linear maps, table lookups through bootstrapping, and the
/// label head that may end it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Step {
    /// A leveled linear map (no bootstrap).
    Linear(LinearLayer),
    /// A programmable-bootstrap table lookup, one per value.
    Lookup(LookupLayer),
    /// Label and top-K modes, last step only: the scores' argmax (or sign), or their `top`
    /// best classes, computed exactly by bootstrapped comparisons and re-randomized
    /// ([`crate::fhe::label`]). Its design derives from the encoding plan
    /// ([`crate::fhe::EncodingPlan::label_head`]), which every reader checks.
    Label(LabelHead),
}

/// An integer model: unsigned inputs of `input_bits` bits through a sequence of steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Program {
    /// Number of quantized input features.
    pub n_inputs: usize,
    /// Width of each input, in bits: inputs lie in `0..2^input_bits`.
    pub input_bits: u32,
    /// The steps, applied in order; each step's input width is the previous one's output.
    pub steps: Vec<Step>,
}

/// Limits that keep every integer of a valid program far from i64 overflow.
pub const MAX_WEIGHT: i64 = 1 << 20;
/// Largest absolute bias in a valid program's linear layers.
pub const MAX_BIAS: i64 = 1 << 40;
/// Widest input a valid program may take, in bits.
pub const MAX_INPUT_BITS: u32 = 16;

impl Program {
    /// Checks shapes and ranges, so a program read from a blob cannot make an interpreter
    /// index out of bounds or overflow.
    ///
    /// # Errors
    ///
    /// `Error::Compile` if there are no inputs, `input_bits` is outside `1..=MAX_INPUT_BITS`,
    /// a layer's shape does not chain with the previous step, a weight or bias exceeds
    /// [`MAX_WEIGHT`] or [`MAX_BIAS`], a lookup layer has the wrong number of tables, a bad
    /// circle size, scale or mirror constant, or an invalid table, or a label head is not the
    /// last step or does not take the scores' count.
    pub fn validate(&self) -> Result<()> {
        if self.n_inputs == 0 || !(1..=MAX_INPUT_BITS).contains(&self.input_bits) {
            return Err(Error::Compile(format!(
                "program takes {} inputs of {} bits",
                self.n_inputs, self.input_bits
            )));
        }
        let mut width = self.n_inputs;
        for (k, step) in self.steps.iter().enumerate() {
            match step {
                Step::Linear(l) => {
                    if l.n_inputs != width
                        || l.n_outputs == 0
                        || l.weights.len() != l.n_inputs * l.n_outputs
                        || l.bias.len() != l.n_outputs
                    {
                        return Err(Error::Compile(format!(
                            "step {k}: a {}×{} layer with {} weights and {} biases after {width} values",
                            l.n_outputs,
                            l.n_inputs,
                            l.weights.len(),
                            l.bias.len()
                        )));
                    }
                    l.check_exclusive()
                        .map_err(|e| Error::Compile(format!("step {k}: {e}")))?;
                    if l.weights.iter().any(|w| w.abs() > MAX_WEIGHT)
                        || l.bias.iter().any(|b| b.abs() > MAX_BIAS)
                    {
                        return Err(Error::Compile(format!(
                            "step {k}: weights beyond ±2^20 or biases beyond ±2^40"
                        )));
                    }
                    width = l.n_outputs;
                }
                Step::Lookup(l) => {
                    l.validate(k, width)?;
                    width = l.n_outputs();
                }
                Step::Label(head) => {
                    let scores = if head.pairwise { head.classes } else { 1 };
                    let sane = (2..=MAX_LABEL_CLASSES).contains(&head.classes)
                        && (1..=head.classes).contains(&head.top)
                        && (head.pairwise || head.top == 1)
                        && (1..=MAX_LEVELS).contains(&head.levels.len())
                        && head.label_bits == label_bits(head.classes);
                    if !sane {
                        return Err(Error::Compile(format!(
                            "step {k}: a label head over {} classes returning {} labels with {} scales",
                            head.classes,
                            head.top,
                            head.levels.len()
                        )));
                    }
                    if k + 1 != self.steps.len() || width != scores {
                        return Err(Error::Compile(format!(
                            "step {k}: a label head over {scores} scores, after {width} values, must be the last step"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// The steps that compute the scores: every step but the label head.
    pub fn score_steps(&self) -> &[Step] {
        match self.steps.split_last() {
            Some((Step::Label(_), scores)) => scores,
            _ => &self.steps,
        }
    }

    /// The label head ending the program, in label and top-K modes.
    pub fn head(&self) -> Option<&LabelHead> {
        match self.steps.last() {
            Some(Step::Label(head)) => Some(head),
            _ => None,
        }
    }

    /// What the program returns: scores, or (with a label head) labels.
    pub fn output(&self) -> OutputMode {
        match self.head().map(|h| h.top) {
            None => OutputMode::Scores,
            Some(1) => OutputMode::Label,
            Some(k) => OutputMode::TopK(k),
        }
    }

    /// The same program with its label head removed: the scores program.
    pub fn without_head(&self) -> Program {
        Program {
            n_inputs: self.n_inputs,
            input_bits: self.input_bits,
            steps: self.score_steps().to_vec(),
        }
    }

    /// Whether the encrypted interpreter needs the client's evaluation key: the program
    /// bootstraps (a lookup, or a label head).
    pub fn needs_evaluation_key(&self) -> bool {
        self.bootstraps() > 0
    }

    /// Number of scores the program computes (before any label head): the width after its
    /// last score step.
    pub fn n_outputs(&self) -> usize {
        self.score_steps()
            .iter()
            .fold(self.n_inputs, |width, step| match step {
                Step::Linear(l) => l.n_outputs,
                Step::Lookup(l) => l.n_outputs(),
                Step::Label(_) => width,
            })
    }

    /// Programmable bootstraps one inference costs: one per looked-up value, and the label
    /// head's ([`LabelHead::bootstraps`]). The one count every report quotes.
    pub fn bootstraps(&self) -> usize {
        self.steps
            .iter()
            .map(|s| match s {
                Step::Lookup(l) => l.neurons.len(),
                Step::Linear(_) => 0,
                Step::Label(head) => head.bootstraps(),
            })
            .sum()
    }

    /// The linear layers, in order.
    pub fn linear_layers(&self) -> impl Iterator<Item = &LinearLayer> {
        self.steps.iter().filter_map(|s| match s {
            Step::Linear(l) => Some(l),
            _ => None,
        })
    }

    /// The lookup layers, in order.
    pub fn lookup_layers(&self) -> impl Iterator<Item = &LookupLayer> {
        self.steps.iter().filter_map(|s| match s {
            Step::Lookup(l) => Some(l),
            _ => None,
        })
    }

    /// The single linear step of a leveled (linear) scores program, if that is what it is
    /// (a label head may follow it).
    pub fn as_linear(&self) -> Option<&LinearLayer> {
        match self.score_steps() {
            [Step::Linear(l)] => Some(l),
            _ => None,
        }
    }

    /// Checks input count and range: the clear twin refuses what encryption would refuse.
    ///
    /// # Errors
    ///
    /// `Error::Input` if `x` does not have `n_inputs` values or one exceeds `2^input_bits - 1`.
    pub fn check_input(&self, x: &[u64]) -> Result<()> {
        if x.len() != self.n_inputs {
            return Err(Error::Input(format!(
                "{} quantized inputs, the program takes {}",
                x.len(),
                self.n_inputs
            )));
        }
        let max = (1u64 << self.input_bits) - 1;
        if let Some(j) = x.iter().position(|&v| v > max) {
            return Err(Error::Input(format!(
                "quantized input {j} is {}, above the {}-bit maximum {max}",
                x[j], self.input_bits
            )));
        }
        Ok(())
    }

    /// Exact interval of every score over all valid inputs.
    pub fn output_bounds(&self) -> Vec<(i64, i64)> {
        self.bounds_after(self.score_steps())
    }

    /// Exact output intervals after `steps` (a prefix of this program's), from the inputs'
    /// `0..2^input_bits - 1`.
    fn bounds_after(&self, steps: &[Step]) -> Vec<(i64, i64)> {
        let max = ((1u64 << self.input_bits) - 1) as i64;
        let mut bounds = vec![(0, max); self.n_inputs];
        for step in steps {
            bounds = match step {
                Step::Linear(layer) => layer.bounds(&bounds),
                Step::Lookup(layer) => layer.neuron_bounds(),
                Step::Label(_) => bounds,
            };
        }
        bounds
    }

    /// Largest |value| a label head compares over valid inputs: one score's bound, or, for
    /// several scores, the largest bound of a difference `s_i - s_j`. When the scores come from
    /// a linear step, each difference is bounded as the linear map with weights `w_i - w_j`
    /// over that step's input bounds (the inputs shared by both scores cancel, so this is
    /// tighter than `max_i - min_j`); otherwise from the scores' own bounds.
    pub fn compared_max_abs(&self) -> u64 {
        let bounds = self.output_bounds();
        let steps = self.score_steps();
        let Some((Step::Linear(layer), before)) = steps.split_last() else {
            return crate::fhe::label::compared_max_abs(&bounds);
        };
        if bounds.len() < 2 {
            return crate::fhe::label::compared_max_abs(&bounds);
        }
        let inputs = self.bounds_after(before);
        let pairs: Vec<(usize, usize)> = crate::fhe::label::pairs(bounds.len()).collect();
        let weights = pairs
            .iter()
            .flat_map(|&(i, j)| layer.row(i).iter().zip(layer.row(j)).map(|(a, b)| a - b))
            .collect();
        let bias = pairs
            .iter()
            .map(|&(i, j)| layer.bias[i] - layer.bias[j])
            .collect();
        let differences = LinearLayer::new(layer.n_inputs, pairs.len(), weights, bias)
            .and_then(|d| d.with_exclusive(layer.exclusive.clone()));
        match differences {
            Ok(d) => d
                .bounds(&inputs)
                .into_iter()
                .map(|(lo, hi)| lo.unsigned_abs().max(hi.unsigned_abs()))
                .max()
                .unwrap_or(0)
                // Never wider than the scores' own bounds allow.
                .min(crate::fhe::label::compared_max_abs(&bounds)),
            Err(_) => crate::fhe::label::compared_max_abs(&bounds),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relu_layer() -> LookupLayer {
        // 64 positions, value z at position z; +1 at positions 2 and 4: a 3-level clipped ReLU.
        LookupLayer {
            positions: 64,
            scale_num: 1,
            scale_shift: 0,
            mirror: 0,
            neurons: vec![TableFunction::staircase(0, &[2, 4])],
        }
    }

    /// The compared bound of two scores from one linear step: the shared input cancels, so
    /// `|s_0 - s_1|` is bounded by `7` (weights 3 - 2 on input 0, 1 - 1 on input 1), not by
    /// `max s_0 - min s_1 = 28`; and every input pair stays within it.
    #[test]
    fn compared_bounds_cancel_shared_inputs() {
        let layer = LinearLayer::new(2, 2, vec![3, 1, 2, 1], vec![0, 0]).unwrap();
        let program = Program {
            n_inputs: 2,
            input_bits: 3,
            steps: vec![Step::Linear(layer.clone())],
        };
        assert_eq!(
            crate::fhe::label::compared_max_abs(&program.output_bounds()),
            28
        );
        assert_eq!(program.compared_max_abs(), 7);
        for a in 0..8 {
            for b in 0..8 {
                let s = layer.apply(&[a, b]);
                assert!((s[0] - s[1]).unsigned_abs() <= 7);
            }
        }
    }

    #[test]
    fn linear_layers_apply_and_bound() {
        let layer = LinearLayer::new(2, 2, vec![1, -2, 3, 0], vec![5, -1]).unwrap();
        assert_eq!(layer.apply(&[2, 1]), [5, 5]);
        assert_eq!(layer.bounds(&[(0, 3), (0, 1)]), [(3, 8), (-1, 8)]);
        assert_eq!(layer.max_row_l1(), 3);
        assert!(LinearLayer::new(2, 2, vec![1, 2, 3], vec![0, 0]).is_err());
        assert!(LinearLayer::new(0, 1, vec![], vec![0]).is_err());
        // At most one of inputs 0 and 1 is non-zero: the group adds its widest term.
        let free = LinearLayer::new(3, 1, vec![1, 2, 1], vec![0]).unwrap();
        let grouped = free.clone().with_exclusive(vec![vec![0, 1]]).unwrap();
        let inputs = [(-5, 5), (-5, 5), (-5, 5)];
        assert_eq!(free.bounds(&inputs), vec![(-20, 20)]);
        assert_eq!(grouped.bounds(&inputs), vec![(-15, 15)]);
        // A group member that cannot be zero voids the claim: the plain sum.
        assert_eq!(grouped.bounds(&[(1, 5), (-5, 5), (0, 0)]), vec![(-9, 15)]);
        assert!(free.clone().with_exclusive(vec![vec![0, 3]]).is_err());
        assert!(free.with_exclusive(vec![vec![0, 1], vec![1, 2]]).is_err());
    }

    #[test]
    fn lookups_read_their_staircase() {
        let l = relu_layer();
        let out: Vec<i64> = (0..7).map(|z| l.apply(&[z])[0]).collect();
        assert_eq!(out, [0, 0, 1, 1, 2, 2, 2]);
        // Past the half circle the table is mirrored: mirror - T.
        assert_eq!(l.read(&l.neurons[0], 32 + 4), -2);
        assert_eq!(l.position(-1), 63);
    }

    #[test]
    fn the_clear_interpreter_runs_the_steps_in_order() {
        let program = Program {
            n_inputs: 2,
            input_bits: 3,
            steps: vec![
                Step::Linear(LinearLayer::new(2, 1, vec![1, 1], vec![0]).unwrap()),
                Step::Lookup(relu_layer()),
                Step::Linear(LinearLayer::new(1, 2, vec![3, -3], vec![0, 1]).unwrap()),
            ],
        };
        program.validate().unwrap();
        assert_eq!(program.bootstraps(), 1);
        assert_eq!(program.simulate(&[1, 3]).unwrap(), [6, -5]);
        assert_eq!(program.simulate(&[0, 1]).unwrap(), [0, 1]);
        // Inputs beyond input_bits, or of the wrong count, are refused.
        assert!(program.simulate(&[8, 0]).is_err());
        assert!(program.simulate(&[1]).is_err());
    }
}
