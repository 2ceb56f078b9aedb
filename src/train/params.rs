//! Training parameters in linfa's style: an unchecked builder per family (`LogisticParams`,
//! `LinearParams`, `MlpParams`, `ForestParams`) whose settings are checked by linfa's
//! [`ParamGuard`] (`check` / `check_ref`, a clear `Error::Training` for an invalid value) before
//! `fit` trains on a [`Split`]. Every fitted model implements [`crate::Compile`], so one
//! [`crate::compile`] takes any of them.

use linfa::ParamGuard;

use crate::data::Split;
use crate::error::{Error, Result};
use crate::train::mlp::{fit_mlp, Mlp, MlpConfig};
use crate::train::trees::{fit_forest, ForestConfig, TrainedForest};
use crate::train::{
    fit_linear, fit_logistic_cv, LinearRegressionFit, Logistic, LOGISTIC_ALPHAS,
    LOGISTIC_MAX_ITERATIONS,
};

/// Checked logistic-regression settings: L2 strengths to choose from by 3-fold
/// cross-validation, and L-BFGS iterations.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticValidParams {
    alphas: Vec<f64>,
    max_iterations: u64,
}

impl LogisticValidParams {
    /// The L2 strengths tried (linfa's `alpha`; 1 is scikit-learn's `C = 1`).
    pub fn alphas(&self) -> &[f64] {
        &self.alphas
    }

    /// L-BFGS iterations at most.
    pub fn max_iterations(&self) -> u64 {
        self.max_iterations
    }
}

/// Logistic regression (binary or multinomial, from the number of classes), unchecked.
/// Default: alphas {1, 10, 0.1} by cross-validation, 300 iterations.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticParams(LogisticValidParams);

impl Default for LogisticParams {
    fn default() -> Self {
        Self(LogisticValidParams {
            alphas: LOGISTIC_ALPHAS.to_vec(),
            max_iterations: LOGISTIC_MAX_ITERATIONS,
        })
    }
}

impl LogisticParams {
    /// One L2 strength, no cross-validation.
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.0.alphas = vec![alpha];
        self
    }

    /// L2 strengths to choose from by 3-fold cross-validation on the training rows.
    pub fn alphas(mut self, alphas: &[f64]) -> Self {
        self.0.alphas = alphas.to_vec();
        self
    }

    /// L-BFGS iterations at most.
    pub fn max_iterations(mut self, n: u64) -> Self {
        self.0.max_iterations = n;
        self
    }

    /// Checks, then fits on the split's scaled training rows.
    ///
    /// # Errors
    /// `Error::Training` for invalid settings or when linfa fails.
    pub fn fit(&self, split: &Split<usize>) -> Result<Logistic> {
        let p = self.check_ref()?;
        fit_logistic_cv(split, &p.alphas, p.max_iterations)
    }
}

impl ParamGuard for LogisticParams {
    type Checked = LogisticValidParams;
    type Error = Error;

    fn check_ref(&self) -> Result<&LogisticValidParams> {
        let p = &self.0;
        if p.alphas.is_empty() || p.alphas.iter().any(|a| !(a.is_finite() && *a >= 0.0)) {
            return Err(Error::Training(format!(
                "logistic regression needs at least one finite, non-negative L2 strength, got {:?}",
                p.alphas
            )));
        }
        if p.max_iterations == 0 {
            return Err(Error::Training(
                "logistic regression needs at least one iteration".into(),
            ));
        }
        Ok(p)
    }

    fn check(self) -> Result<LogisticValidParams> {
        self.check_ref()?;
        Ok(self.0)
    }
}

/// Least squares (ridge where it has no unique solution); no settings to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinearParams;

impl LinearParams {
    /// Fits on the split's scaled training rows ([`fit_linear`]).
    ///
    /// # Errors
    /// `Error::Training` when least squares and ridge both fail.
    pub fn fit(&self, split: &Split<f64>) -> Result<LinearRegressionFit> {
        fit_linear(split)
    }
}

/// MLP classifier settings, unchecked ([`MlpConfig`] is the checked form). Default: one hidden
/// layer of 32, 8-bit inputs, 3-bit activations, 4-bit weights, 120 epochs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MlpParams(MlpConfig);

impl MlpParams {
    /// Hidden layer widths (`[32]`: one layer of 32).
    pub fn hidden(mut self, widths: &[usize]) -> Self {
        self.0.hidden = widths.to_vec();
        self
    }

    /// Bits of each input feature (2..=16).
    pub fn input_bits(mut self, bits: u32) -> Self {
        self.0.input_bits = bits;
        self
    }

    /// Bits of each hidden activation (1..=6).
    pub fn activation_bits(mut self, bits: u32) -> Self {
        self.0.activation_bits = bits;
        self
    }

    /// Bits of the weights after the first layer (2..=8).
    pub fn weight_bits(mut self, bits: u32) -> Self {
        self.0.weight_bits = bits;
        self
    }

    /// Training epochs (at least 1).
    pub fn epochs(mut self, epochs: usize) -> Self {
        self.0.epochs = epochs;
        self
    }

    /// Fraction of each hidden layer pruned after three quarters of the epochs (0 to 0.95;
    /// default 0.25): one bootstrap per inference fewer for each neuron removed.
    pub fn prune(mut self, fraction: f64) -> Self {
        self.0.prune = fraction;
        self
    }

    /// Seed of initialization and shuffling.
    pub fn seed(mut self, seed: u64) -> Self {
        self.0.seed = seed;
        self
    }

    /// Checks, then trains on the split's training rows.
    ///
    /// # Errors
    /// `Error::Training` for invalid settings, no features, or a failed training step.
    pub fn fit(&self, split: &Split<usize>) -> Result<Mlp> {
        fit_mlp(split, self.check_ref()?)
    }
}

/// Settings from a config (checked when fitting).
impl From<MlpConfig> for MlpParams {
    fn from(config: MlpConfig) -> Self {
        Self(config)
    }
}

impl ParamGuard for MlpParams {
    type Checked = MlpConfig;
    type Error = Error;

    fn check_ref(&self) -> Result<&MlpConfig> {
        self.0.validate_settings()?;
        Ok(&self.0)
    }

    fn check(self) -> Result<MlpConfig> {
        self.check_ref()?;
        Ok(self.0)
    }
}

/// Decision tree and random forest settings, unchecked ([`ForestConfig`] is the checked
/// form). `ForestParams::tree()` (the default) is one depth-4 tree on 4-bit inputs;
/// `ForestParams::forest()` ten of them.
///
/// ```
/// use fhe_ml::prelude::*;
/// let params = ForestParams::forest().depth(9);
/// assert!(params.check_ref().is_err());          // depth must be 1..=7
/// assert_eq!(ForestParams::forest().depth(5).check().map(|c| c.depth).ok(), Some(5));
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ForestParams(ForestConfig);

impl ForestParams {
    /// One decision tree of depth 4.
    pub fn tree() -> Self {
        Self::default()
    }

    /// A random forest of 10 depth-4 trees.
    pub fn forest() -> Self {
        Self(ForestConfig::forest())
    }

    /// Maximum depth (1..=7).
    pub fn depth(mut self, depth: usize) -> Self {
        self.0.depth = depth;
        self
    }

    /// Number of trees (1..=200; 1 is a single tree on every row and feature).
    pub fn trees(mut self, trees: usize) -> Self {
        self.0.trees = trees;
        self
    }

    /// Bits per feature (2..=5).
    pub fn input_bits(mut self, bits: u32) -> Self {
        self.0.input_bits = bits;
        self
    }

    /// Feature reuse of the encrypted trees, in `[0, 1)` (default 0.2; 0: plain CART): see
    /// [`ForestConfig::reuse`].
    pub fn feature_reuse(mut self, reuse: f64) -> Self {
        self.0.reuse = reuse;
        self
    }

    /// Seed of the forest's row and feature draws.
    pub fn seed(mut self, seed: u64) -> Self {
        self.0.seed = seed;
        self
    }

    /// Checks, then trains the plaintext and quantized forests.
    ///
    /// # Errors
    /// `Error::Training` for invalid settings, or no rows or features.
    pub fn fit(&self, split: &Split<usize>) -> Result<TrainedForest> {
        fit_forest(split, self.check_ref()?)
    }
}

/// Settings from a config (checked when fitting).
impl From<ForestConfig> for ForestParams {
    fn from(config: ForestConfig) -> Self {
        Self(config)
    }
}

impl ParamGuard for ForestParams {
    type Checked = ForestConfig;
    type Error = Error;

    fn check_ref(&self) -> Result<&ForestConfig> {
        self.0.validate()?;
        Ok(&self.0)
    }

    fn check(self) -> Result<ForestConfig> {
        self.check_ref()?;
        Ok(self.0)
    }
}
