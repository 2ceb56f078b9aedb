//! The linear families beyond logistic regression and least squares, each trained by a linfa
//! algorithm crate on a split's scaled training rows and compiled, like them, to one exact
//! leveled linear map ([`crate::compiler::linear`]):
//! - linear SVM classifier ([`SvmParams`]): scikit-learn's `LinearSVC` (squared hinge loss,
//!   one-vs-rest for three classes or more), minimized by Newton's method as liblinear's primal
//!   solver does ([`newton_squared_hinge`]). linfa-svm fits the plain hinge loss (libsvm's
//!   C-SVC); on digits it reached 95.3% at C = 1 and at best 95.6% over C in 0.01..10, against
//!   `LinearSVC`'s 96.4% (measured), so it is not used;
//! - Ridge, Lasso and ElasticNet regression ([`PenalizedParams`]): linfa-elasticnet's
//!   coordinate descent;
//! - Poisson, Gamma and Tweedie regression ([`GlmParams`]) with the log link, fitted by Newton's
//!   method (see [`GlmParams::fit`] for why not linfa-linear's `TweedieRegressor`); the server
//!   computes the linear predictor `η` exactly and the client applies `exp` after decryption
//!   ([`Link::Log`]).
//!
//! The two fits of this module's own ([`newton_minimize`]: the SVM's and the GLMs') are there
//! because the linfa crates could not reach scikit-learn's models (measured, see each).
//! Penalties are given in scikit-learn's units and default to scikit-learn's defaults, so the
//! same settings mean the same model on both sides; the conversions to linfa's objectives are
//! stated where they are made.

use linfa::prelude::*;
use ndarray::{Array1, Array2, Axis};

use crate::compiler::{FloatLinearModel, LinearModel};
use crate::data::Split;
use crate::error::{Error, Result};
use crate::program::{Link, OutputKind};

/// Linear SVM settings: the soft-margin penalty `C` (scikit-learn's `LinearSVC(C=1.0)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SvmParams {
    c: f64,
}

impl Default for SvmParams {
    fn default() -> Self {
        Self { c: 1.0 }
    }
}

impl SvmParams {
    /// The soft-margin penalty `C` (> 0; larger fits the training rows harder).
    pub fn c(mut self, c: f64) -> Self {
        self.c = c;
        self
    }

    /// The penalty `C`.
    pub fn c_value(&self) -> f64 {
        self.c
    }

    /// Fits one binary SVM (two classes) or one per class against the rest (three or more) on
    /// the split's scaled training rows ([`newton_squared_hinge`]).
    ///
    /// # Errors
    /// `Error::Training` for `C` not finite and positive, a split without two classes, or when
    /// Newton's method does not converge in 1000 steps.
    pub fn fit(&self, split: &Split<usize>) -> Result<LinearSvm> {
        if !(self.c.is_finite() && self.c > 0.0) {
            return Err(Error::Training(format!(
                "the SVM penalty C must be finite and positive, got {}",
                self.c
            )));
        }
        let n_classes = split.classes.len();
        if n_classes < 2 {
            return Err(Error::Training("an SVM needs two classes or more".into()));
        }
        let x = split.train.records();
        let targets = split.train.targets();
        // Two classes: one machine scoring class 1; more: one per class.
        let positives: Vec<usize> = if n_classes == 2 {
            vec![1]
        } else {
            (0..n_classes).collect()
        };
        let d = x.ncols();
        let mut weights = Array2::zeros((positives.len(), d));
        let mut bias = Vec::with_capacity(positives.len());
        for (o, &class) in positives.iter().enumerate() {
            let y: Vec<bool> = targets.iter().map(|&t| t == class).collect();
            let (w, b) = newton_squared_hinge(x, &y, self.c, 1000).ok_or_else(|| {
                Error::Training("linear SVM: Newton's method did not converge".into())
            })?;
            weights.row_mut(o).assign(&w);
            bias.push(b);
        }
        Ok(LinearSvm {
            weights,
            bias,
            n_classes,
        })
    }
}

/// A fitted linear SVM on scaled features: decision scores `W x_scaled + b`, one per class
/// (one in all for two classes: class 1 when `≥ 0`).
#[derive(Debug, Clone, PartialEq)]
pub struct LinearSvm {
    /// `n_scores × n_features`: 1 row for two classes, `n_classes` otherwise.
    pub weights: Array2<f64>,
    /// Intercepts, one per score.
    pub bias: Vec<f64>,
    /// Number of classes of the split it was fitted on.
    pub n_classes: usize,
}

impl LinearSvm {
    /// Decision scores for scaled rows (`n_rows × n_scores`).
    pub fn decision_function(&self, scaled: &Array2<f64>) -> Array2<f64> {
        scaled.dot(&self.weights.t()) + Array1::from(self.bias.clone())
    }

    /// Class indices for scaled rows (`n_rows × n_features`): the sign of the one score, or
    /// the largest score (first on ties).
    pub fn predict(&self, scaled: &Array2<f64>) -> Vec<usize> {
        self.decision_function(scaled)
            .rows()
            .into_iter()
            .map(|s| {
                if s.len() == 1 {
                    usize::from(s[0] >= 0.0)
                } else {
                    (0..s.len()).fold(0, |b, i| if s[i] > s[b] { i } else { b })
                }
            })
            .collect()
    }
}

impl LinearModel for LinearSvm {
    fn float_model(&self, classes: &[i64]) -> Result<FloatLinearModel> {
        if classes.len() != self.n_classes {
            return Err(Error::Compile(format!(
                "an SVM fitted on {} classes, the split has {}",
                self.n_classes,
                classes.len()
            )));
        }
        let kind = if self.n_classes == 2 {
            OutputKind::Binary {
                classes: [classes[0], classes[1]],
            }
        } else {
            OutputKind::Multiclass {
                classes: classes.to_vec(),
            }
        };
        Ok(FloatLinearModel {
            weights: self.weights.clone(),
            bias: self.bias.clone(),
            kind,
            link: Link::Identity,
        })
    }
}

/// Which penalty a [`PenalizedParams`] fits with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Penalty {
    /// L2: scikit-learn's `Ridge`, `||y - Xw||² + alpha ||w||²`.
    Ridge,
    /// L1: scikit-learn's `Lasso`, `1/(2n) ||y - Xw||² + alpha ||w||₁`.
    Lasso,
    /// Both: scikit-learn's `ElasticNet`, `1/(2n) ||y - Xw||² + alpha l1_ratio ||w||₁ +
    /// alpha (1 - l1_ratio)/2 ||w||²`.
    ElasticNet {
        /// The L1 share of the penalty, in `[0, 1]`.
        l1_ratio: f64,
    },
}

impl Penalty {
    /// `"ridge"`, `"lasso"` or `"elasticnet"`.
    pub fn name(self) -> &'static str {
        match self {
            Penalty::Ridge => "ridge",
            Penalty::Lasso => "lasso",
            Penalty::ElasticNet { .. } => "elasticnet",
        }
    }
}

/// Penalized least squares settings, in scikit-learn's units; `alpha` defaults to 1 and
/// ElasticNet's `l1_ratio` to 0.5, as there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PenalizedParams {
    penalty: Penalty,
    alpha: f64,
}

impl PenalizedParams {
    /// Ridge regression, `alpha = 1`.
    pub fn ridge() -> Self {
        Self {
            penalty: Penalty::Ridge,
            alpha: 1.0,
        }
    }

    /// Lasso regression, `alpha = 1`.
    pub fn lasso() -> Self {
        Self {
            penalty: Penalty::Lasso,
            alpha: 1.0,
        }
    }

    /// ElasticNet regression, `alpha = 1`, `l1_ratio = 0.5`.
    pub fn elastic_net() -> Self {
        Self {
            penalty: Penalty::ElasticNet { l1_ratio: 0.5 },
            alpha: 1.0,
        }
    }

    /// The penalty strength (≥ 0, scikit-learn's `alpha`).
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }

    /// ElasticNet's L1 share (`[0, 1]`); ignored by Ridge and Lasso.
    pub fn l1_ratio(mut self, l1_ratio: f64) -> Self {
        if let Penalty::ElasticNet { .. } = self.penalty {
            self.penalty = Penalty::ElasticNet { l1_ratio };
        }
        self
    }

    /// The penalty kind.
    pub fn penalty(&self) -> Penalty {
        self.penalty
    }

    /// Fits on the split's scaled training rows with linfa-elasticnet (coordinate descent,
    /// intercept unpenalized). linfa's objective is ElasticNet's; Ridge's sum of squares is `2n`
    /// times it, so Ridge's `alpha` becomes linfa's penalty `alpha / n_train`.
    ///
    /// # Errors
    /// `Error::Training` for an `alpha` or `l1_ratio` out of range, or when linfa fails.
    pub fn fit(&self, split: &Split<f64>) -> Result<PenalizedFit> {
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return Err(Error::Training(format!(
                "the penalty alpha must be finite and non-negative, got {}",
                self.alpha
            )));
        }
        let n = split.train.nsamples() as f64;
        let (penalty, l1_ratio) = match self.penalty {
            Penalty::Ridge => (self.alpha / n.max(1.0), 0.0),
            Penalty::Lasso => (self.alpha, 1.0),
            Penalty::ElasticNet { l1_ratio } => {
                if !(0.0..=1.0).contains(&l1_ratio) {
                    return Err(Error::Training(format!(
                        "ElasticNet's l1_ratio must be in [0, 1], got {l1_ratio}"
                    )));
                }
                (self.alpha, l1_ratio)
            }
        };
        let fitted = linfa_elasticnet::ElasticNet::params()
            .penalty(penalty)
            .l1_ratio(l1_ratio)
            .with_intercept(true)
            .max_iterations(10_000)
            .tolerance(1e-8)
            .fit(&split.train)
            .map_err(|e| Error::Training(format!("{}: {e}", self.penalty.name())))?;
        Ok(PenalizedFit {
            weights: fitted.hyperplane().clone(),
            intercept: fitted.intercept(),
            penalty: self.penalty,
        })
    }
}

/// A fitted penalized linear regression on scaled features: `y = weights · x_scaled +
/// intercept`.
#[derive(Debug, Clone, PartialEq)]
pub struct PenalizedFit {
    /// One weight per scaled feature (`n_features`).
    pub weights: Array1<f64>,
    /// The intercept, in target units.
    pub intercept: f64,
    /// The penalty it was fitted with.
    pub penalty: Penalty,
}

impl PenalizedFit {
    /// Predictions for scaled rows (`n_rows × n_features`), in target units.
    pub fn predict(&self, scaled: &Array2<f64>) -> Array1<f64> {
        scaled.dot(&self.weights) + self.intercept
    }
}

impl LinearModel for PenalizedFit {
    fn float_model(&self, _classes: &[i64]) -> Result<FloatLinearModel> {
        Ok(FloatLinearModel {
            weights: self.weights.clone().insert_axis(Axis(0)),
            bias: vec![self.intercept],
            kind: OutputKind::Regression,
            link: Link::Identity,
        })
    }
}

/// Generalized linear model settings: a Tweedie distribution of `power` with the log link and
/// an L2 penalty `alpha` in scikit-learn's units (`PoissonRegressor`, `GammaRegressor`,
/// `TweedieRegressor(link="log")`; `alpha` 1 by default, as there).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GlmParams {
    power: f64,
    alpha: f64,
    max_iterations: usize,
}

impl GlmParams {
    /// Poisson regression (power 1): counts.
    pub fn poisson() -> Self {
        Self::tweedie(1.0)
    }

    /// Gamma regression (power 2): positive, right-skewed values.
    pub fn gamma() -> Self {
        Self::tweedie(2.0)
    }

    /// Tweedie regression of `power` (0: normal, 1: Poisson, (1, 2): compound Poisson–gamma,
    /// 2: gamma, 3: inverse Gaussian); the CLI's `tweedie` is power 1.5.
    pub fn tweedie(power: f64) -> Self {
        Self {
            power,
            alpha: 1.0,
            max_iterations: 100,
        }
    }

    /// The L2 penalty (≥ 0, scikit-learn's `alpha`).
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }

    /// Newton steps at most (100 by default; the shipped data need fewer than 20).
    pub fn max_iterations(mut self, n: usize) -> Self {
        self.max_iterations = n;
        self
    }

    /// The distribution's power.
    pub fn power(&self) -> f64 {
        self.power
    }

    /// `"poisson"`, `"gamma"` or `"tweedie"`.
    pub fn name(&self) -> &'static str {
        if self.power == 1.0 {
            "poisson"
        } else if self.power == 2.0 {
            "gamma"
        } else {
            "tweedie"
        }
    }

    /// Fits on the split's scaled training rows: scikit-learn's objective `1/(2n) Σ deviance +
    /// alpha/2 ||w||²` (intercept unpenalized), minimized by Newton's method ([`newton_glm`]).
    ///
    /// linfa-linear 0.8.1's `TweedieRegressor` minimizes the same objective by L-BFGS, but on
    /// the bike-sharing counts its More–Thuente line search had not returned after 11 minutes
    /// (measured), so the fit is this module's own; it stops where scikit-learn's
    /// `newton-cholesky` solver would.
    ///
    /// # Errors
    /// `Error::Training` for a power in (0, 1) (no distribution) or outside [0, 3], a negative
    /// or non-finite alpha, targets outside the distribution's range (negative counts for
    /// Poisson, values ≤ 0 for Gamma), or when the solver fails.
    pub fn fit(&self, split: &Split<f64>) -> Result<GlmFit> {
        if !(self.power == 0.0 || (1.0..=3.0).contains(&self.power)) {
            return Err(Error::Training(format!(
                "the Tweedie power must be 0 or in [1, 3], got {}",
                self.power
            )));
        }
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return Err(Error::Training(format!(
                "the penalty alpha must be finite and non-negative, got {}",
                self.alpha
            )));
        }
        if self.max_iterations == 0 {
            return Err(Error::Training(
                "a GLM needs at least one Newton step".into(),
            ));
        }
        let y = split.train.targets();
        let bad = if self.power == 0.0 {
            None
        } else if self.power < 2.0 {
            y.iter().find(|v| v.is_nan() || **v < 0.0)
        } else {
            y.iter().find(|v| v.is_nan() || **v <= 0.0)
        };
        if let Some(v) = bad {
            return Err(Error::Training(format!(
                "{} regression needs {} targets, found {v}",
                self.name(),
                if self.power < 2.0 {
                    "non-negative"
                } else {
                    "positive"
                }
            )));
        }
        let (weights, intercept) = newton_glm(
            split.train.records(),
            y,
            self.power,
            self.alpha,
            self.max_iterations,
        )
        .ok_or_else(|| {
            Error::Training(format!(
                "{} regression did not converge in {} Newton steps",
                self.name(),
                self.max_iterations
            ))
        })?;
        Ok(GlmFit {
            weights,
            intercept,
            power: self.power,
        })
    }
}

/// A fitted GLM with the log link on scaled features: mean `exp(weights · x_scaled +
/// intercept)`.
#[derive(Debug, Clone, PartialEq)]
pub struct GlmFit {
    /// One weight per scaled feature (`n_features`).
    pub weights: Array1<f64>,
    /// The intercept of the linear predictor.
    pub intercept: f64,
    /// The Tweedie power it was fitted with.
    pub power: f64,
}

impl GlmFit {
    /// Predicted means for scaled rows (`n_rows × n_features`), in target units.
    pub fn predict(&self, scaled: &Array2<f64>) -> Array1<f64> {
        (scaled.dot(&self.weights) + self.intercept).mapv(f64::exp)
    }
}

impl LinearModel for GlmFit {
    fn float_model(&self, _classes: &[i64]) -> Result<FloatLinearModel> {
        Ok(FloatLinearModel {
            weights: self.weights.clone().insert_axis(Axis(0)),
            bias: vec![self.intercept],
            kind: OutputKind::Regression,
            link: Link::Log,
        })
    }
}

/// Minimizes a smooth convex `objective` from `theta` by Newton's method: `derivatives` gives
/// the gradient and a positive definite (generalized) Hessian, the step solves `H Δ = -g` by
/// Cholesky, and a backtracking line search halves it until the objective decreases enough
/// (Armijo). Stops when the largest gradient entry is below `gradient_tolerance`, or the
/// objective no longer decreases (relative change ≤ 1e-12, or no decrease along the Newton
/// direction: the minimum to rounding). `None` if not converged within `max_steps`, or on a
/// non-finite value or a singular Hessian.
pub fn newton_minimize(
    mut theta: Array1<f64>,
    max_steps: usize,
    gradient_tolerance: f64,
    objective: impl Fn(&Array1<f64>) -> f64,
    derivatives: impl Fn(&Array1<f64>) -> (Array1<f64>, Array2<f64>),
) -> Option<Array1<f64>> {
    use linfa_linalg::cholesky::SolveC;
    let mut value = objective(&theta);
    for _ in 0..max_steps {
        let (gradient, mut hessian) = derivatives(&theta);
        if !gradient.iter().all(|g| g.is_finite()) {
            return None;
        }
        if gradient.iter().fold(0.0f64, |m, g| m.max(g.abs())) < gradient_tolerance {
            return Some(theta);
        }
        let step = hessian
            .solvec(&(-&gradient).insert_axis(Axis(1)))
            .ok()?
            .remove_axis(Axis(1));
        let slope = gradient.dot(&step);
        let mut t = 1.0;
        let mut improved = None;
        while t > 1e-10 {
            let candidate = &theta + &(t * &step);
            let v = objective(&candidate);
            if v.is_finite() && v <= value + 1e-4 * t * slope {
                improved = Some((candidate, v));
                break;
            }
            t *= 0.5;
        }
        // No decrease along a descent direction: the minimum, to rounding.
        let Some((candidate, v)) = improved else {
            return Some(theta);
        };
        let done = (value - v).abs() <= 1e-12 * value.abs().max(1.0);
        theta = candidate;
        value = v;
        if done {
            return Some(theta);
        }
    }
    None
}

/// Minimizes `1/(2n) Σ d(y_i, exp(η_i)) + alpha/2 ||w||²` over `η = x·w + b` (`x`: `n_rows ×
/// n_features`; `d`: the unit Tweedie deviance of `power`) by [`newton_minimize`] with Fisher's
/// information as the Hessian (IRLS: positive definite for every power), from `w = 0`, `b =
/// ln(mean y)` as scikit-learn starts. Returns `(w, b)`; `None` as `newton_minimize`.
pub fn newton_glm(
    x: &Array2<f64>,
    y: &Array1<f64>,
    power: f64,
    alpha: f64,
    max_steps: usize,
) -> Option<(Array1<f64>, f64)> {
    let (n, d) = x.dim();
    if n == 0 {
        return None;
    }
    let nf = n as f64;
    // θ = [b, w]; X̃ = [1, x].
    let mut design = Array2::ones((n, d + 1));
    design.slice_mut(ndarray::s![.., 1..]).assign(x);
    let mut theta = Array1::zeros(d + 1);
    theta[0] = y.mean().filter(|m| *m > 0.0)?.ln();
    let unit = |y: f64, mu: f64| -> f64 {
        // ½ of the unit deviance, up to a term in y alone (it does not move the minimum).
        if power == 1.0 {
            mu - y * mu.ln()
        } else if power == 2.0 {
            y / mu + mu.ln()
        } else {
            -y * mu.powf(1.0 - power) / (1.0 - power) + mu.powf(2.0 - power) / (2.0 - power)
        }
    };
    let objective = |theta: &Array1<f64>| -> f64 {
        let eta = design.dot(theta);
        let loss: f64 = eta.iter().zip(y).map(|(e, &yi)| unit(yi, e.exp())).sum();
        let w = theta.slice(ndarray::s![1..]);
        loss / nf + 0.5 * alpha * w.dot(&w)
    };
    let derivatives = |theta: &Array1<f64>| {
        let mu = design.dot(theta).mapv(f64::exp);
        // dη of ½d: (μ - y) μ^(1-p); Fisher weight μ^(2-p).
        let grad_eta: Array1<f64> = mu
            .iter()
            .zip(y)
            .map(|(&m, &yi)| (m - yi) * m.powf(1.0 - power))
            .collect();
        let weight = mu.mapv(|m| m.powf(2.0 - power));
        let mut gradient = design.t().dot(&grad_eta) / nf;
        let weighted = &design * &weight.view().insert_axis(Axis(1));
        let mut hessian = design.t().dot(&weighted) / nf;
        for j in 1..=d {
            gradient[j] += alpha * theta[j];
            // A tiny ridge keeps columns that are all zero (constant features) or collinear
            // with the intercept (a one-hot block) solvable when alpha is 0.
            hessian[[j, j]] += alpha + 1e-10;
        }
        (gradient, hessian)
    };
    theta = newton_minimize(theta, max_steps, 1e-8, objective, derivatives)?;
    let weights = theta.slice(ndarray::s![1..]).to_owned();
    let intercept = theta[0];
    (weights.iter().all(|w| w.is_finite()) && intercept.is_finite()).then_some((weights, intercept))
}

/// Minimizes scikit-learn's `LinearSVC` objective, `½ ||θ||² + C Σ max(0, 1 - y_i θ·x̃_i)²` with
/// `x̃ = [x, 1]` (the intercept penalized, as liblinear does with `intercept_scaling = 1`) and
/// `y_i = ±1` (`positive`), by [`newton_minimize`] with the generalized Hessian `I + 2C Σ_{active}
/// x̃ x̃ᵀ` (Keerthi and DeCoste, "A modified finite Newton method for fast solution of large
/// scale linear SVMs", JMLR 6, 2005; liblinear's primal solver). Returns `(w, b)`.
pub fn newton_squared_hinge(
    x: &Array2<f64>,
    positive: &[bool],
    c: f64,
    max_steps: usize,
) -> Option<(Array1<f64>, f64)> {
    let (n, d) = x.dim();
    let mut design = Array2::ones((n, d + 1));
    design.slice_mut(ndarray::s![.., ..d]).assign(x);
    let y: Array1<f64> = positive
        .iter()
        .map(|&p| if p { 1.0 } else { -1.0 })
        .collect();
    let margins = |theta: &Array1<f64>| 1.0 - &(design.dot(theta) * &y);
    let objective = |theta: &Array1<f64>| -> f64 {
        let hinge: f64 = margins(theta).iter().map(|m| m.max(0.0).powi(2)).sum();
        0.5 * theta.dot(theta) + c * hinge
    };
    let derivatives = |theta: &Array1<f64>| {
        let m = margins(theta);
        let active: Array1<f64> = m.mapv(|v| f64::from(u8::from(v > 0.0)));
        // g = θ - 2C Σ_active y_i m_i x̃_i
        let coef = &(&y * &m) * &active * (-2.0 * c);
        let gradient = theta + &design.t().dot(&coef);
        let weighted = &design * &(&active * (2.0 * c)).insert_axis(Axis(1));
        let mut hessian = design.t().dot(&weighted);
        for j in 0..=d {
            hessian[[j, j]] += 1.0;
        }
        (gradient, hessian)
    };
    let theta = newton_minimize(
        Array1::zeros(d + 1),
        max_steps,
        1e-6,
        objective,
        derivatives,
    )?;
    Some((theta.slice(ndarray::s![..d]).to_owned(), theta[d]))
}
