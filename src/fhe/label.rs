//! Label mode and output sanitization: the server turns encrypted scores into the encrypted
//! class label (the sign of a binary score, the argmax of several) by programmable
//! bootstrapping, then re-randomizes it, so the client learns the prediction and nothing more
//! of the model.
//!
//! **Exact comparisons of wide scores.** Scores span up to ±2^20 units while a bootstrap reads
//! 4096 positions with Gaussian noise (σ ≈ 4.8 positions). A compared value `v = d + 1/2`
//! (`d`: a score, or the difference of two; the half unit breaks ties the way the clear argmax
//! does) is read at several scales at once: level `j` multiplies the ciphertext by `m_j`
//! (`c_j` positions per unit; any integer ratio between levels below the noise limit, about
//! 28 at N = 2048) and returns `0` inside a band of ±`F` positions around zero, else the sign. A coarse level that says "not zero" is
//! right; one that says "zero" guarantees the next finer level does not wrap. The first
//! non-zero level decides: a second bootstrap reads `Σ t_j 2^(L-j)`, whose sign is that
//! level's (`2^k > 2^k - 1`). The finest level has no band and reads `v` at `c_L` positions per
//! unit with `c_L/2` above the noise margin, so `v` (never zero) always gets a sign.
//! Every margin is `GAUSSIAN_MARGIN` standard deviations of tfhe's noise formulas.
//!
//! **Argmax and top-k.** Every pair `i < j` gets one comparison (`i` wins ties, as the clear
//! argmax takes the first maximum); class `i`'s sum of ±1 outcomes is `C - 1 - 2r` exactly
//! when `i` ranks `r` (the ranks are a permutation: the order is total), which one lookup per
//! class and rank turns into a one-hot bit (one blind rotation per class, read at every returned
//! rank); each returned label's bits are sums of those.
//!
//! **Sanitization.** Each label bit is `±2^62`. `SANITIZE_ROUNDS` times: add a fresh
//! encryption of zero under the client's compact public key with TUniform(2^61) body noise,
//! then bootstrap the bit's sign. See the README's security section for the argument.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fhe::bootstrap::{Bootstrapper, TestPolynomial};
use crate::fhe::stats::two_sided_tail;
use crate::fhe::LeveledParameters;

/// What a served model returns. Written `scores`, `label` or `top-K` (CLI, JSON); on the
/// binary wire, the number of labels as a `u32` (0 for scores): four bytes, as before top-K.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputMode {
    /// The encrypted scores (logits): the client gets probabilities, and learns the most about
    /// the model.
    #[default]
    Scores,
    /// Only the encrypted class label, re-randomized: the client learns the prediction.
    Label,
    /// The `K ≥ 2` most likely class labels, best first, re-randomized (multiclass models).
    TopK(usize),
}

impl OutputMode {
    /// Labels returned: `None` for scores, 1 for `label`, `K` for `top-K`.
    pub fn labels(self) -> Option<usize> {
        match self {
            OutputMode::Scores => None,
            OutputMode::Label => Some(1),
            OutputMode::TopK(k) => Some(k),
        }
    }
}

impl std::fmt::Display for OutputMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutputMode::Scores => f.write_str("scores"),
            OutputMode::Label => f.write_str("label"),
            OutputMode::TopK(k) => write!(f, "top-{k}"),
        }
    }
}

impl std::str::FromStr for OutputMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let k = s.strip_prefix("top-").map(|k| k.parse::<usize>());
        match (s, k) {
            ("scores", _) => Ok(OutputMode::Scores),
            ("label", _) | (_, Some(Ok(1))) => Ok(OutputMode::Label),
            (_, Some(Ok(k))) if (2..=MAX_LABEL_CLASSES).contains(&k) => Ok(OutputMode::TopK(k)),
            (other, _) => Err(Error::Input(format!(
                "output mode {other:?}: expected \"scores\", \"label\" or \"top-K\" \
                 (K from 2 to {MAX_LABEL_CLASSES})"
            ))),
        }
    }
}

impl Serialize for OutputMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_u32(self.labels().unwrap_or(0) as u32)
        }
    }
}

impl<'de> Deserialize<'de> for OutputMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        if d.is_human_readable() {
            return String::deserialize(d)?.parse().map_err(D::Error::custom);
        }
        match u32::deserialize(d)? {
            0 => Ok(OutputMode::Scores),
            1 => Ok(OutputMode::Label),
            k if (2..=MAX_LABEL_CLASSES as u32).contains(&k) => Ok(OutputMode::TopK(k as usize)),
            k => Err(D::Error::custom(format!("output mode of {k} labels"))),
        }
    }
}

/// Margin of every lookup, in standard deviations of its position noise: a read lands beyond
/// it with probability 2^-41.6 (two-sided).
pub const GAUSSIAN_MARGIN: f64 = 7.3;
/// Bootstrap-and-flood rounds on each label bit before it leaves the server.
pub const SANITIZE_ROUNDS: usize = 4;
/// Flooding noise added with each re-randomization: TUniform(2^61), a quarter of a label
/// bit's `2^63` margin to the decision boundary.
pub const FLOOD_LOG2: u32 = 61;
/// A label bit is encrypted as `+LABEL_BIT` (1) or `-LABEL_BIT` (0).
pub const LABEL_BIT: u64 = 1 << 62;
/// Bits per returned coefficient of a label bit (rounding error at most 2^58.1 of the 2^62
/// margin).
pub const LABEL_OUTPUT_BITS: u32 = 16;
/// Largest number of scales per comparison (the combining bootstrap reads `±(2^5 - 1)`).
pub const MAX_LEVELS: usize = 5;
/// Largest number of classes the one-hot lookup separates.
pub const MAX_LABEL_CLASSES: usize = 15;

/// One scale of a comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Level {
    /// The compared ciphertext is multiplied by this (wrapping), placing `v` at `c_j`
    /// positions per unit.
    pub multiplier: u64,
    /// Half-width of the zero band, in positions (0 for the finest level: a plain sign).
    pub band: u32,
    /// What a non-zero reading returns, in combine units (`2^(L-j)`).
    pub weight: u64,
}

/// The comparison circuit of one model: derived from its plan, so client and server agree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelHead {
    /// Classes the label ranges over (2 for a model with one score).
    pub classes: usize,
    /// Several scores, compared pairwise (argmax); otherwise the sign of one score.
    pub pairwise: bool,
    /// log2 of the scores' delta.
    pub delta_log2: u32,
    /// Coarse to fine.
    pub levels: Vec<Level>,
    /// Positions per unit of the combining sum.
    pub combine_unit: u64,
    /// Positions per win in the argmax's sums (multiclass).
    pub win_unit: u64,
    /// Margin used everywhere, in positions.
    pub margin: f64,
    /// Standard deviation of a lookup's position noise (modulus switch and keyswitch), in
    /// positions.
    pub lookup_sigma: f64,
    /// Bits of each returned label: `ceil(log2(classes))`, at least 1.
    pub label_bits: u32,
    /// Labels returned, best first (1: the argmax or sign).
    pub top: usize,
    polynomial_size: usize,
    position_log2: u32,
}

/// What the head is given about the values it compares (all in score units).
#[derive(Debug, Clone, Copy)]
pub struct CompareRange {
    /// Largest |d| over valid inputs (a score, or the difference of two).
    pub max_abs: u64,
    /// Bound on the leveled error of `d` (0 for sums of bootstrap outputs).
    pub bounded_error: f64,
    /// Standard deviation of `d`'s Gaussian noise (0 for leveled programs).
    pub sigma: f64,
}

/// Bits of a label among `classes` classes (one for two).
pub fn label_bits(classes: usize) -> u32 {
    ceil_log2(classes as u64).max(1)
}

/// Reads decrypted label bits (64-bit phases, bit 0 first: non-negative is 1) into a class
/// index, refusing one beyond the classes.
///
/// # Errors
/// `Error::Wire` when there are not `label_bits(classes)` phases, or the index they spell is
/// not below `classes` (a corrupted or mismatched result).
pub fn decode_label_bits(classes: usize, phases: &[u64]) -> Result<usize> {
    if phases.len() != label_bits(classes) as usize {
        return Err(Error::Wire(format!(
            "{} label bits, expected {}",
            phases.len(),
            label_bits(classes)
        )));
    }
    let index = phases
        .iter()
        .enumerate()
        .map(|(b, &p)| usize::from((p as i64) >= 0) << b)
        .sum::<usize>();
    if index >= classes {
        return Err(Error::Wire(format!(
            "decrypted label {index} of {classes} classes: corrupted or mismatched result"
        )));
    }
    Ok(index)
}

/// Reads the decrypted bits of `top` labels (best first), refusing repeated labels: the
/// ranks of one inference are distinct.
///
/// # Errors
/// `Error::Wire` when there are not `top` labels' worth of phases, or a label is out of
/// range or repeats a class (a corrupted or mismatched result).
pub fn decode_top_labels(classes: usize, top: usize, phases: &[u64]) -> Result<Vec<usize>> {
    let bits = label_bits(classes) as usize;
    if phases.len() != bits * top {
        return Err(Error::Wire(format!(
            "{} label bits, expected {} for {top} labels",
            phases.len(),
            bits * top
        )));
    }
    let labels: Vec<usize> = phases
        .chunks(bits)
        .map(|chunk| decode_label_bits(classes, chunk))
        .collect::<Result<_>>()?;
    if (1..labels.len()).any(|i| labels[..i].contains(&labels[i])) {
        return Err(Error::Wire(format!(
            "decrypted labels {labels:?} repeat a class: corrupted or mismatched result"
        )));
    }
    Ok(labels)
}

/// The clear twin of the label head: the `top` largest scores' indices, best first, ties to
/// the lower index (as the encrypted comparisons break them); one score ranks class 1 first
/// when it is non-negative.
pub fn top_labels(scores: &[i64], top: usize) -> Vec<usize> {
    if let [score] = scores {
        let best = usize::from(*score >= 0);
        return [best, 1 - best].into_iter().take(top).collect();
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(scores[i]));
    order.truncate(top);
    order
}

/// Every pair `i < j` of `classes`.
pub(crate) fn pairs(classes: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..classes).flat_map(move |i| (i + 1..classes).map(move |j| (i, j)))
}

/// Largest |value| compared: the score itself (one output), or any difference of two.
pub fn compared_max_abs(bounds: &[(i64, i64)]) -> u64 {
    if bounds.len() == 1 {
        let (lo, hi) = bounds[0];
        return lo.unsigned_abs().max(hi.unsigned_abs());
    }
    pairs(bounds.len())
        .map(|(i, j)| {
            let (a, b) = (bounds[i], bounds[j]);
            (a.1 - b.0).unsigned_abs().max((a.0 - b.1).unsigned_abs())
        })
        .max()
        .unwrap_or(0)
}

fn ceil_log2(x: u64) -> u32 {
    if x <= 1 {
        0
    } else {
        64 - (x - 1).leading_zeros()
    }
}

impl LabelHead {
    /// Designs the comparison for `classes` classes (2: the sign of one score) over values
    /// described by `range`, scores at `2^delta_log2` per unit; fails when no design of at
    /// most `MAX_LEVELS` scales is exact.
    ///
    /// # Errors
    /// `Error::Compile` when `classes` is outside 2 to `MAX_LABEL_CLASSES`, the leveled error
    /// leaves no margin, the delta is too small to resolve one unit, no design of at most
    /// `MAX_LEVELS` scales fits, or one score is asked to decide among more than two classes;
    /// `Error::Wire` when the parameter set has no bootstrap parameters.
    pub fn new(
        params: &LeveledParameters,
        classes: usize,
        pairwise: bool,
        delta_log2: u32,
        range: CompareRange,
    ) -> Result<Self> {
        let bad = |m: String| Err(Error::Compile(format!("label mode: {m}")));
        if !(2..=MAX_LABEL_CLASSES).contains(&classes) {
            return bad(format!(
                "{classes} classes (2 to {MAX_LABEL_CLASSES} supported)"
            ));
        }
        if range.bounded_error >= 0.25 {
            return bad(format!(
                "leveled error of {} units leaves no margin",
                range.bounded_error
            ));
        }
        let noise = params.bootstrap_noise()?;
        let position_log2 = params.position_log2();
        let position = 2f64.powi(position_log2 as i32);
        let lookup_sigma = noise.lookup_positions(0.0, position);
        let margin = GAUSSIAN_MARGIN * lookup_sigma;
        let n = params.polynomial_size as f64;
        let unit = 2f64.powi(delta_log2 as i32 - position_log2 as i32);
        let per_unit = |m: u64| m as f64 * unit;
        // Finest level: v = d + 1/2 is at least (1/2 - error) units from zero; its multiplier
        // is the smallest integer that puts that over half a position beyond the margin (reads
        // round to the nearest position; any integer multiplier wraps exactly).
        let finest = ((margin + 0.5) / ((0.5 - range.bounded_error) * unit)).floor() + 1.0;
        if finest.log2() + delta_log2 as f64 >= 63.0 {
            return bad("the scores' delta is too small to resolve one unit".into());
        }
        let band = margin.ceil() as u32 + 1;
        let mut chain = vec![(finest as u64, 0u32)];
        let reach =
            range.max_abs as f64 + GAUSSIAN_MARGIN * range.sigma + range.bounded_error + 0.5;
        loop {
            let &(m, f) = chain.last().expect("non-empty");
            if reach * per_unit(m) + margin < n - f as f64 {
                break;
            }
            // The coarser level's zero band, read at this level, must not wrap: the ratio of
            // multipliers stays below `limit` (about 28 at N = 2048), any integer ratio.
            let limit = (n - f as f64 - margin - 0.5) / (band as f64 + margin);
            let coarser = (m as f64 / limit).floor() as u64 + 1;
            if coarser >= m || chain.len() == MAX_LEVELS {
                return bad(format!(
                    "scores up to {} units need more than {MAX_LEVELS} scales at delta 2^{delta_log2}",
                    range.max_abs
                ));
            }
            chain.push((coarser, band));
        }
        chain.reverse();
        let l = chain.len() as u32;
        let combine_sigma = (lookup_sigma.powi(2)
            + chain.len() as f64 * (noise.output_std / position).powi(2))
        .sqrt();
        let combine_margin = GAUSSIAN_MARGIN * combine_sigma;
        let top = ((1u64 << l) - 1) as f64;
        let combine_unit = (0..=10)
            .rev()
            .map(|e| 1u64 << e)
            .find(|&c| top * c as f64 + combine_margin < n && c as f64 > combine_margin)
            .ok_or_else(|| Error::Compile("label mode: no combine scale fits".into()))?;
        let win_sigma = (lookup_sigma.powi(2)
            + (classes - 1) as f64 * (noise.output_std / position).powi(2))
        .sqrt();
        let win_margin = GAUSSIAN_MARGIN * win_sigma;
        let win_unit = (0..=10)
            .rev()
            .map(|e| 1u64 << e)
            .find(|&c| {
                (2 * classes - 1) as f64 * c as f64 + win_margin <= n && c as f64 > win_margin
            })
            .ok_or_else(|| Error::Compile("label mode: too many classes".into()))?;
        if !pairwise && classes != 2 {
            return bad("one score decides between two classes".into());
        }
        Ok(Self {
            classes,
            pairwise,
            delta_log2,
            levels: chain
                .iter()
                .enumerate()
                .map(|(j, &(multiplier, band))| Level {
                    multiplier,
                    band,
                    weight: 1 << (l - 1 - j as u32),
                })
                .collect(),
            combine_unit,
            win_unit,
            margin,
            lookup_sigma,
            label_bits: label_bits(classes),
            top: 1,
            polynomial_size: params.polynomial_size,
            position_log2,
        })
    }

    /// Returns the `top` best labels instead of the argmax (multiclass only).
    ///
    /// # Errors
    /// `Error::Compile` when `top` is 0, above the number of classes, or above 1 for a model
    /// with one score.
    pub fn with_top(mut self, top: usize) -> Result<Self> {
        if top == 0 || top > self.classes || (top > 1 && !self.pairwise) {
            let ranks = if self.pairwise { self.classes } else { 1 };
            return Err(Error::Compile(format!(
                "top-{top}: this model ranks 1 to {ranks} labels"
            )));
        }
        self.top = top;
        Ok(self)
    }

    /// Compared values per inference: one score, or every pair of classes.
    pub fn comparisons(&self) -> usize {
        if self.pairwise {
            self.classes.saturating_mul(self.classes.saturating_sub(1)) / 2
        } else {
            1
        }
    }

    /// Bootstraps per inference: levels and combine per comparison, one-hot per class (one
    /// blind rotation read at every returned rank; multiclass), and the sanitizing rounds per
    /// returned label bit.
    pub fn bootstraps(&self) -> usize {
        // Saturating: a head read from untrusted bytes is counted before it is checked.
        let onehot = if self.pairwise { self.classes } else { 0 };
        self.comparisons()
            .saturating_mul(self.levels.len().saturating_add(1))
            .saturating_add(onehot)
            .saturating_add(SANITIZE_ROUNDS.saturating_mul(self.output_ciphertexts()))
    }

    /// Ciphertexts returned: the label bits of each of the `top` labels, best first.
    pub fn output_ciphertexts(&self) -> usize {
        (self.label_bits as usize).saturating_mul(self.top)
    }

    /// Bootstraps one after another (the rest run in parallel).
    pub fn sequential_bootstraps(&self) -> usize {
        let onehot = usize::from(self.pairwise);
        2 + onehot + SANITIZE_ROUNDS
    }

    /// Whether `other` is the same design: equal integers, and floats (margin, noise) equal to
    /// 1e-9 relative, since tfhe's noise formulas may round their last bits differently on
    /// another platform's maths library.
    pub fn same_design(&self, other: &Self) -> bool {
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-300);
        self.classes == other.classes
            && self.pairwise == other.pairwise
            && self.delta_log2 == other.delta_log2
            && self.levels == other.levels
            && self.combine_unit == other.combine_unit
            && self.win_unit == other.win_unit
            && self.label_bits == other.label_bits
            && self.top == other.top
            && self.polynomial_size == other.polynomial_size
            && self.position_log2 == other.position_log2
            && close(self.margin, other.margin)
            && close(self.lookup_sigma, other.lookup_sigma)
    }

    /// Probability that some lookup of one inference reads beyond its margin (union bound).
    pub fn failure_probability(&self) -> f64 {
        self.bootstraps() as f64 * two_sided_tail(GAUSSIAN_MARGIN)
    }

    fn position(&self) -> u64 {
        1u64 << self.position_log2
    }

    /// Level `j`'s table at coefficient `q < N`, in combine units: 0 in the band (and in the
    /// wrap region it never validly reads), else the weight; the finest level is all weight.
    fn level_entry(&self, j: usize, q: usize) -> i64 {
        let level = &self.levels[j];
        let f = level.band as usize;
        if f > 0 && (q < f || q >= self.polynomial_size - f) {
            0
        } else {
            level.weight as i64
        }
    }

    /// Rank `r`'s one-hot table at coefficient `q`: 1 when the sum of wins is `C - 1 - 2r`
    /// (±1 win unit), read at `q` or, for a negative sum, at `q - N` (the table holds `2^63`,
    /// its own negation, so both halves of the circle agree). Sums lie within
    /// `(C - 1)·c + margin` of zero and `(2C - 1)·c + margin ≤ N`, so the halves never meet.
    /// The encrypted head reads rank 0's table `2rc` positions on for rank `r` (one blind
    /// rotation for every rank; `onehot_reads_give_every_rank` checks it equals rank `r`'s).
    fn onehot_entry(&self, rank: usize, q: usize) -> i64 {
        let c = self.win_unit as i64;
        let target = (self.classes as i64 - 1 - 2 * rank as i64) * c;
        let hit = |p: i64| target - c <= p && p < target + c;
        let q = q as i64;
        i64::from(hit(q) || hit(q - self.polynomial_size as i64))
    }

    /// What a bootstrap returns at position `p` (any integer) for a table `t` of `N`
    /// entries: `t[p]` on the first half circle, `-t[p - N]` on the second.
    fn negacyclic(&self, p: i64, t: impl Fn(usize) -> i64) -> i64 {
        let n = self.polynomial_size as i64;
        let p = p.rem_euclid(2 * n);
        if p < n {
            t(p as usize)
        } else {
            -t((p - n) as usize)
        }
    }

    /// The comparison in the clear, at exact positions moved by `noise(k)` positions at each
    /// read `k`: `true` when `v = value + 1/2` comes out non-negative. With every `|noise| <=
    /// margin` and `value` within the designed range, it equals `value >= -1/2` (tested).
    pub fn compare_clear(&self, value: f64, mut noise: impl FnMut(usize) -> f64) -> bool {
        let v = value + 0.5;
        let unit = 2f64.powi(self.delta_log2 as i32 - self.position_log2 as i32);
        let mut sum = 0i64;
        for (j, level) in self.levels.iter().enumerate() {
            // Positions wrap modulo 2N as the torus does modulo 2^64.
            let exact = v * unit * level.multiplier as f64;
            let wrapped = exact.rem_euclid(2.0 * self.polynomial_size as f64);
            let p = (wrapped + noise(j)).round() as i64;
            sum += self.negacyclic(p, |q| self.level_entry(j, q));
        }
        let p = (sum as f64 * self.combine_unit as f64 + noise(self.levels.len())).round() as i64;
        self.negacyclic(p, |_| 1) > 0
    }

    /// Coefficients read from rank 0's one-hot rotation, one per returned rank: `2rc`.
    fn onehot_reads(&self) -> Vec<usize> {
        (0..self.top)
            .map(|r| 2 * r * self.win_unit as usize)
            .collect()
    }

    /// The test polynomials the server bootstraps with (built once per server).
    pub fn tables(&self) -> LabelTables {
        let n = self.polynomial_size;
        let position = self.position();
        let combine = self.combine_unit * position;
        let levels = (0..self.levels.len())
            .map(|j| {
                let coefficients: Vec<u64> = (0..n)
                    .map(|q| (self.level_entry(j, q) as u64).wrapping_mul(combine))
                    .collect();
                TestPolynomial::from_coefficients(&coefficients)
            })
            .collect();
        // The sign of the combined levels: a label bit (binary) or a win (multiclass).
        let sign_value = if !self.pairwise {
            LABEL_BIT
        } else {
            self.win_unit * position
        };
        LabelTables {
            levels,
            sign: TestPolynomial::from_coefficients(&vec![sign_value; n]),
            onehot: TestPolynomial::windowed(
                &(0..n)
                    .map(|q| (self.onehot_entry(0, q) as u64) << 63)
                    .collect::<Vec<_>>(),
                0,
                self.onehot_reads(),
            ),
            label_bit: TestPolynomial::from_coefficients(&vec![LABEL_BIT; n]),
        }
    }

    /// The encrypted head: scores (LWE ciphertexts in the evaluation key's natural order, at
    /// `2^delta_log2` per unit) in, sanitized label bits (`±LABEL_BIT`, bit 0 first, best
    /// label first) out.
    ///
    /// # Errors
    /// `Error::Compile` when the number of scores is not the head's; `Error::Wire` when a
    /// ciphertext's dimension does not match the key.
    pub fn evaluate(
        &self,
        tables: &LabelTables,
        bootstrapper: &Bootstrapper,
        scores: &[Vec<u64>],
    ) -> Result<Vec<Vec<u64>>> {
        let expected = if self.pairwise { self.classes } else { 1 };
        if scores.len() != expected {
            return Err(Error::Compile(format!(
                "label head for {} classes given {} scores",
                self.classes,
                scores.len()
            )));
        }
        let half = 1u64 << (self.delta_log2 - 1);
        let pairs: Vec<(usize, usize)> = if !self.pairwise {
            vec![(0, usize::MAX)]
        } else {
            pairs(self.classes).collect()
        };
        // v = d + 1/2 for each comparison.
        let compared: Vec<Vec<u64>> = pairs
            .iter()
            .map(|&(i, j)| {
                let mut v = scores[i].clone();
                if j != usize::MAX {
                    for (a, b) in v.iter_mut().zip(&scores[j]) {
                        *a = a.wrapping_sub(*b);
                    }
                }
                let body = v.last_mut().expect("non-empty");
                *body = body.wrapping_add(half);
                v
            })
            .collect();
        let n_levels = self.levels.len();
        let level_outputs: Vec<Vec<u64>> = (0..compared.len() * n_levels)
            .into_par_iter()
            .map(|k| {
                let (c, j) = (k / n_levels, k % n_levels);
                let m = self.levels[j].multiplier;
                let scaled = compared[c].iter().map(|x| x.wrapping_mul(m)).collect();
                first(bootstrapper.lookup(scaled, &tables.levels[j], 0)?)
            })
            .collect::<Result<_>>()?;
        let signs: Vec<Vec<u64>> = level_outputs
            .par_chunks(n_levels)
            .map(|outs| first(bootstrapper.lookup(sum(outs.iter(), 1), &tables.sign, 0)?))
            .collect::<Result<_>>()?;
        let bits: Vec<Vec<u64>> = if !self.pairwise {
            signs
        } else {
            // W_i = Σ_{j>i} σ_ij − Σ_{j<i} σ_ji = C − 1 − 2·rank(i).
            let wins: Vec<Vec<u64>> = (0..self.classes)
                .map(|i| {
                    let mut w = vec![0u64; scores[0].len()];
                    for (p, &(a, b)) in pairs.iter().enumerate() {
                        let sign = if a == i {
                            1u64
                        } else if b == i {
                            u64::MAX
                        } else {
                            continue;
                        };
                        for (x, y) in w.iter_mut().zip(&signs[p]) {
                            *x = x.wrapping_add(y.wrapping_mul(sign));
                        }
                    }
                    w
                })
                .collect();
            // by_class[i][r]: class i ranks r (one rotation per class, read at every rank).
            let by_class: Vec<Vec<Vec<u64>>> = wins
                .into_par_iter()
                .map(|w| bootstrapper.lookup(w, &tables.onehot, 0))
                .collect::<Result<_>>()?;
            // onehot[r * C + i]
            let onehot: Vec<Vec<u64>> = (0..self.top * self.classes)
                .map(|k| by_class[k % self.classes][k / self.classes].clone())
                .collect();
            onehot
                .chunks(self.classes)
                .flat_map(|ranked| {
                    (0..self.label_bits).map(move |b| {
                        let members = ranked
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| (i >> b) & 1 == 1)
                            .map(|(_, ct)| ct);
                        // One class holds each rank, its bit 2^63: −2^62 + 2^63 = +2^62 when
                        // it sets bit b.
                        let mut bit = sum(members, scores[0].len());
                        let body = bit.last_mut().expect("non-empty");
                        *body = body.wrapping_sub(LABEL_BIT);
                        bit
                    })
                })
                .collect()
        };
        bits.into_par_iter()
            .map(|mut bit| {
                for _ in 0..SANITIZE_ROUNDS {
                    bootstrapper.rerandomize(&mut bit, FLOOD_LOG2)?;
                    bit = first(bootstrapper.lookup(bit, &tables.label_bit, 0)?)?;
                }
                Ok(bit)
            })
            .collect()
    }

    /// Statistical distance between the results (every returned label bit) of two models with
    /// the same prediction, after sanitization, not counting the `2^-41.6` tail events: each
    /// round is a Markov kernel whose Dobrushin coefficient is at most `2·τ / 2^(FLOOD_LOG2 +
    /// 1)` (`τ`: the largest noise of a bootstrap output, `GAUSSIAN_MARGIN` standard
    /// deviations; the first round's input sums up to `C/2` of them); rounds multiply, and the
    /// bits, sanitized independently, add.
    ///
    /// # Errors
    /// `Error::Wire` when the parameter set has no bootstrap parameters.
    pub fn sanitization_distance(&self, params: &LeveledParameters) -> Result<f64> {
        let noise = params.bootstrap_noise()?;
        let flood = 2f64.powi(FLOOD_LOG2 as i32 + 1);
        let first_terms = if !self.pairwise {
            1.0
        } else {
            (self.classes as f64 / 2.0).ceil()
        };
        let round = |terms: f64| 2.0 * GAUSSIAN_MARGIN * noise.output_std * terms.sqrt() / flood;
        let per_bit = round(first_terms) * round(1.0).powi(SANITIZE_ROUNDS as i32 - 1);
        Ok(per_bit * self.output_ciphertexts() as f64)
    }
}

/// The head's test polynomials.
pub struct LabelTables {
    levels: Vec<TestPolynomial>,
    sign: TestPolynomial,
    /// Rank 0's table, read at every returned rank.
    onehot: TestPolynomial,
    label_bit: TestPolynomial,
}

fn first(mut outputs: Vec<Vec<u64>>) -> Result<Vec<u64>> {
    outputs
        .pop()
        .ok_or_else(|| Error::Compile("a lookup returned nothing".into()))
}

fn sum<'a>(cts: impl Iterator<Item = &'a Vec<u64>>, or_len: usize) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::new();
    for ct in cts {
        if out.is_empty() {
            out = ct.clone();
        } else {
            for (a, b) in out.iter_mut().zip(ct) {
                *a = a.wrapping_add(*b);
            }
        }
    }
    if out.is_empty() {
        out = vec![0; or_len];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn head(classes: usize, delta_log2: u32, max_abs: u64, error: f64) -> LabelHead {
        LabelHead::new(
            &LeveledParameters::default(),
            classes,
            classes > 2,
            delta_log2,
            CompareRange {
                max_abs,
                bounded_error: error,
                sigma: 0.0,
            },
        )
        .unwrap()
    }

    /// The level design is exact: every value in range, with every read pushed by noise up to
    /// the margin (at random, and at the extremes), gets the sign of `value + 1/2`.
    #[test]
    fn comparison_is_exact_within_the_noise_margin() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for (classes, delta_log2, max_abs, error) in [
            (2, 44, 240_000, 0.07),
            (10, 42, 860_000, 0.13),
            (2, 50, 3_000, 0.0),
            (10, 40, 1 << 19, 0.2),
        ] {
            let h = head(classes, delta_log2, max_abs, error);
            assert!(h.levels.len() <= MAX_LEVELS);
            let g = h.margin;
            let check = |d: i64, e: f64, rng: &mut rand_chacha::ChaCha8Rng| {
                let value = d as f64 + e;
                let truth = d >= 0;
                for extreme in [-g, g] {
                    assert_eq!(h.compare_clear(value, |_| extreme), truth, "d={d} e={e}");
                }
                let got = h.compare_clear(value, |_| rng.gen_range(-g..g));
                assert_eq!(got, truth, "d={d} e={e} levels {:?}", h.levels);
            };
            for d in -300..300 {
                for e in [-error, 0.0, error] {
                    check(d, e, &mut rng);
                }
            }
            for _ in 0..20_000 {
                let d = rng.gen_range(-(max_abs as i64)..=max_abs as i64);
                check(d, rng.gen_range(-error..=error), &mut rng);
            }
            for d in [max_abs as i64, -(max_abs as i64)] {
                check(d, error, &mut rng);
                check(d, -error, &mut rng);
            }
        }
    }

    #[test]
    fn too_wide_scores_are_refused() {
        let err = LabelHead::new(
            &LeveledParameters::default(),
            2,
            false,
            30,
            CompareRange {
                max_abs: 1 << 32,
                bounded_error: 0.0,
                sigma: 0.0,
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("label mode"), "{err}");
        assert!(LabelHead::new(
            &LeveledParameters::default(),
            16,
            true,
            44,
            CompareRange {
                max_abs: 10,
                bounded_error: 0.0,
                sigma: 0.0
            }
        )
        .is_err());
    }

    /// Each rank's table, read anywhere within the margin of any sum of wins, fires for that
    /// rank's sum alone (10 classes: odd sums; 7: even ones, zero included).
    #[test]
    fn onehot_tables_separate_every_rank() {
        for classes in [10usize, 7, 3] {
            let h = head(classes, 42, 860_000, 0.1).with_top(classes).unwrap();
            let c = h.win_unit as f64;
            for rank in 0..classes {
                let w_rank = classes as i64 - 1 - 2 * rank as i64;
                for w in (-(classes as i64 - 1)..=classes as i64 - 1).step_by(2) {
                    for noise in [-h.margin, 0.0, h.margin] {
                        let p = (w as f64 * c + noise).round() as i64;
                        // The table's 2^63 is its own negation: either half reads as 1.
                        let got = h.negacyclic(p, |q| h.onehot_entry(rank, q)).abs();
                        assert_eq!(
                            got,
                            i64::from(w == w_rank),
                            "{classes}: rank {rank} wins {w}"
                        );
                    }
                }
            }
        }
        let h = head(10, 42, 860_000, 0.1);
        assert_eq!(
            h.clone().with_top(3).unwrap().bootstraps(),
            h.bootstraps() + 8 * 4
        );
        assert!(h.clone().with_top(11).is_err());
        assert!(h.clone().with_top(0).is_err());
        assert_eq!(h.clone().with_top(3).unwrap().output_ciphertexts(), 12);
        assert!(head(2, 44, 240_000, 0.07).with_top(2).is_err());
        assert_eq!(top_labels(&[3, 9, 9, -1, 4], 3), vec![1, 2, 4]);
        assert_eq!(top_labels(&[0], 1), vec![1]);
        assert_eq!(top_labels(&[-1], 2), vec![0, 1]);
        let minus = LABEL_BIT.wrapping_neg();
        let (one, zero) = (LABEL_BIT, minus);
        assert_eq!(
            decode_top_labels(3, 2, &[one, zero, zero, one]).unwrap(),
            vec![1, 2]
        );
        assert!(decode_top_labels(3, 2, &[one, zero, one, zero]).is_err());
        assert!(decode_top_labels(3, 2, &[one, zero]).is_err());
        for (text, mode) in [
            ("scores", OutputMode::Scores),
            ("label", OutputMode::Label),
            ("top-1", OutputMode::Label),
            ("top-3", OutputMode::TopK(3)),
        ] {
            assert_eq!(text.parse::<OutputMode>().unwrap(), mode);
            let json = serde_json::to_string(&mode).unwrap();
            assert_eq!(json, format!("\"{mode}\""));
            assert_eq!(serde_json::from_str::<OutputMode>(&json).unwrap(), mode);
            let wire = bincode::serialize(&mode).unwrap();
            assert_eq!(wire.len(), 4);
            assert_eq!(bincode::deserialize::<OutputMode>(&wire).unwrap(), mode);
        }
        assert_eq!(OutputMode::TopK(3).to_string(), "top-3");
        for bad in ["top-0", "top-16", "top-x", "Label", ""] {
            assert!(bad.parse::<OutputMode>().is_err(), "{bad}");
        }
        let bad_wire = bincode::serialize(&16u32).unwrap();
        assert!(bincode::deserialize::<OutputMode>(&bad_wire).is_err());
    }

    /// The encrypted head reads every rank from rank 0's table, `2rc` positions on: for every
    /// sum of wins, with the read pushed by noise up to the margin, that equals rank `r`'s own
    /// table (what `compare`'s clear twin ranks by).
    #[test]
    fn onehot_reads_give_every_rank() {
        for classes in [15usize, 10, 7, 3] {
            let h = head(classes, 42, 860_000, 0.1).with_top(classes).unwrap();
            let reads = h.onehot_reads();
            let c = h.win_unit as f64;
            for (rank, &read) in reads.iter().enumerate() {
                assert!(read < h.polynomial_size);
                for w in (-(classes as i64 - 1)..=classes as i64 - 1).step_by(2) {
                    for noise in [-h.margin, -h.margin / 2.0, 0.0, h.margin / 2.0, h.margin] {
                        let p = (w as f64 * c + noise).round() as i64;
                        let got = h
                            .negacyclic(p + read as i64, |q| h.onehot_entry(0, q))
                            .abs();
                        let own = h.negacyclic(p, |q| h.onehot_entry(rank, q)).abs();
                        assert_eq!(got, own, "{classes} classes: rank {rank}, wins {w}");
                    }
                }
            }
        }
    }

    #[test]
    fn label_bits_decode() {
        let minus = LABEL_BIT.wrapping_neg();
        assert_eq!(
            decode_label_bits(10, &[LABEL_BIT, minus, LABEL_BIT, minus]).unwrap(),
            5
        );
        assert!(decode_label_bits(10, &[LABEL_BIT; 4]).is_err());
        assert!(decode_label_bits(2, &[LABEL_BIT; 2]).is_err());
        assert_eq!(decode_label_bits(2, &[minus]).unwrap(), 0);
    }
}
