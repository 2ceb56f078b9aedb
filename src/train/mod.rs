//! Training on plaintext: binary and multinomial logistic regression and linear regression
//! with linfa (on a split's scaled training set), MLP classifiers with candle (`mlp`), and
//! decision trees and forests with linfa-trees (`trees`).

pub mod cart;
pub mod ensembles;
pub mod linear;
pub mod mlp;
pub mod params;
pub mod trees;

use linfa::prelude::*;
use linfa::Dataset;
use linfa_linear::LinearRegression;
use linfa_logistic::{
    FittedLogisticRegression, LogisticRegression, MultiFittedLogisticRegression,
    MultiLogisticRegression,
};
use ndarray::{Array2, Axis, Ix1};

use crate::compiler::{FloatLinearModel, LinearModel};
use crate::data::Split;
use crate::error::{Error, Result};

/// L-BFGS iterations for logistic regression; enough for the shipped datasets to converge.
pub const LOGISTIC_MAX_ITERATIONS: u64 = 300;

/// A fitted logistic regression: binary for two classes, multinomial for more.
#[derive(Debug, Clone)]
pub enum Logistic {
    /// Two classes: linfa's binary logistic regression (one score).
    Binary(FittedLogisticRegression<f64, usize>),
    /// Three classes or more: linfa's multinomial logistic regression (one score per class).
    Multinomial(MultiFittedLogisticRegression<f64, usize>),
}

/// L2 strengths tried for logistic regression (linfa's `alpha`; 1.0 is its default and
/// scikit-learn's `C = 1`). linfa's L-BFGS can stop short of the optimum on ill-conditioned
/// problems (digits), where a stronger penalty generalizes better; cross-validation decides.
pub const LOGISTIC_ALPHAS: [f64; 3] = [1.0, 10.0, 0.1];
const FOLDS: usize = 3;

fn fit_logistic_with(
    train: &Dataset<f64, usize, Ix1>,
    n_classes: usize,
    alpha: f64,
    max_iterations: u64,
) -> Result<Logistic> {
    let failed = |e: linfa_logistic::error::Error| Error::Training(e.to_string());
    let fitted = if n_classes == 2 {
        let model = restarted(
            |init: Option<ndarray::Array1<f64>>| {
                let mut params = LogisticRegression::default()
                    .alpha(alpha)
                    .max_iterations(max_iterations);
                if let Some(init) = init {
                    params = params.initial_params(init);
                }
                params.fit(train).map_err(failed)
            },
            |m| {
                let mut init = m.params().to_vec();
                init.push(m.intercept());
                ndarray::Array1::from(init)
            },
            |m| m.params().to_vec(),
        )?;
        Logistic::Binary(model)
    } else {
        let model = restarted(
            |init: Option<Array2<f64>>| {
                let mut params = MultiLogisticRegression::default()
                    .alpha(alpha)
                    .max_iterations(max_iterations);
                if let Some(init) = init {
                    params = params.initial_params(init);
                }
                params.fit(train).map_err(failed)
            },
            |m| {
                let w = m.params();
                let mut init = Array2::zeros((w.nrows() + 1, w.ncols()));
                init.slice_mut(ndarray::s![..w.nrows(), ..]).assign(w);
                init.row_mut(w.nrows()).assign(m.intercept());
                init
            },
            |m| m.params().iter().copied().collect(),
        )?;
        Logistic::Multinomial(model)
    };
    Ok(fitted)
}

/// linfa's L-BFGS can stop long before the optimum when its line search gives up (digits:
/// 93.9% against scikit-learn's 96.1% at the same alpha); restarting from where it stopped
/// continues the descent. Fits with `fit(None)`, then again from `init(&model)` until the
/// weights (`weights(&model)`) stop moving or [`LOGISTIC_RESTARTS`] restarts are spent.
fn restarted<M, I>(
    fit: impl Fn(Option<I>) -> Result<M>,
    init: impl Fn(&M) -> I,
    weights: impl Fn(&M) -> Vec<f64>,
) -> Result<M> {
    let mut model = fit(None)?;
    for _ in 0..LOGISTIC_RESTARTS {
        let next = fit(Some(init(&model)))?;
        let moved = weights(&next)
            .iter()
            .zip(weights(&model))
            .any(|(a, b)| (a - b).abs() > 1e-9);
        model = next;
        if !moved {
            break;
        }
    }
    Ok(model)
}

/// Most restarts of linfa's L-BFGS from where it stopped (see `fit_logistic_with`).
const LOGISTIC_RESTARTS: usize = 20;

/// Held-out accuracy of `alpha` by stratified 3-fold cross-validation on the training set.
fn cross_validate(
    train: &Dataset<f64, usize, Ix1>,
    n_classes: usize,
    alpha: f64,
    max_iterations: u64,
) -> Result<f64> {
    let targets = train.targets();
    // Deterministic stratified folds: the i-th sample of each class goes to fold i mod 3.
    let mut seen = vec![0usize; n_classes];
    let fold: Vec<usize> = targets
        .iter()
        .map(|&c| {
            seen[c] += 1;
            seen[c] % FOLDS
        })
        .collect();
    let mut hits = 0;
    for k in 0..FOLDS {
        let (fit_idx, held_idx): (Vec<usize>, Vec<usize>) =
            (0..fold.len()).partition(|&i| fold[i] != k);
        let subset = |idx: &[usize]| {
            Dataset::new(
                train.records().select(Axis(0), idx),
                targets.select(Axis(0), idx),
            )
        };
        let fit_set = subset(&fit_idx);
        if (0..n_classes).any(|c| !fit_set.targets().iter().any(|&t| t == c)) {
            return Ok(0.0);
        }
        let model = fit_logistic_with(&fit_set, n_classes, alpha, max_iterations)?;
        let held = subset(&held_idx);
        hits += model
            .predict(held.records())
            .iter()
            .zip(held.targets())
            .filter(|(p, t)| p == t)
            .count();
    }
    Ok(hits as f64 / fold.len() as f64)
}

/// Fits logistic regression on the scaled training set, with the L2 strength chosen from
/// [`LOGISTIC_ALPHAS`] by 3-fold cross-validation on the training set (never the test set).
///
/// # Errors
/// `Error::Training` when linfa fails.
pub fn fit_logistic(split: &Split<usize>) -> Result<Logistic> {
    fit_logistic_cv(split, &LOGISTIC_ALPHAS, LOGISTIC_MAX_ITERATIONS)
}

/// Fits logistic regression with the L2 strength chosen from `alphas` (the first on ties) by
/// 3-fold cross-validation on the training set, at most `max_iterations` L-BFGS steps; one
/// alpha skips the cross-validation.
///
/// # Errors
/// `Error::Training` when linfa fails, or `alphas` is empty.
pub fn fit_logistic_cv(
    split: &Split<usize>,
    alphas: &[f64],
    max_iterations: u64,
) -> Result<Logistic> {
    let n_classes = split.classes.len();
    let Some(&first) = alphas.first() else {
        return Err(Error::Training("no L2 strength to try".into()));
    };
    let mut best = (first, f64::NEG_INFINITY);
    if alphas.len() > 1 {
        for &alpha in alphas {
            let score = cross_validate(&split.train, n_classes, alpha, max_iterations)?;
            if score > best.1 {
                best = (alpha, score);
            }
        }
    }
    fit_logistic_with(&split.train, n_classes, best.0, max_iterations)
}

impl Logistic {
    /// Class indices predicted by the float model for scaled rows.
    pub fn predict(&self, scaled: &Array2<f64>) -> Vec<usize> {
        match self {
            Logistic::Binary(m) => m.predict(scaled).to_vec(),
            Logistic::Multinomial(m) => m.predict(scaled).to_vec(),
        }
    }
}

impl LinearModel for Logistic {
    fn float_model(&self, classes: &[i64]) -> Result<FloatLinearModel> {
        match self {
            Logistic::Binary(m) => m.float_model(classes),
            Logistic::Multinomial(m) => m.float_model(classes),
        }
    }
}

/// How a linear regression was solved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LinearSolver {
    /// Ordinary least squares (linfa-linear), as scikit-learn's `LinearRegression`.
    LeastSquares,
    /// Ridge (linfa-elasticnet, L2 penalty `alpha` on standardized features), used when least
    /// squares has no unique solution: collinear features, or fewer rows than features.
    Ridge {
        /// The L2 penalty ([`RIDGE_FALLBACK_ALPHA`]).
        alpha: f64,
    },
}

/// L2 penalty of the ridge fallback: small enough to leave a well-posed fit as least squares
/// would make it, large enough to pick one solution among collinear ones.
pub const RIDGE_FALLBACK_ALPHA: f64 = 1e-4;

/// A fitted linear regression on a split's scaled features: `y = weights · x_scaled +
/// intercept`, `weights` of `n_features` (0 for features constant on the training rows).
#[derive(Debug, Clone, PartialEq)]
pub struct LinearRegressionFit {
    /// One weight per scaled feature (`n_features`).
    pub weights: ndarray::Array1<f64>,
    /// The intercept, in target units.
    pub intercept: f64,
    /// How the fit was solved: least squares, or the ridge fallback.
    pub solver: LinearSolver,
}

impl LinearRegressionFit {
    /// Predictions for scaled rows (`n_rows × n_features`).
    pub fn predict(&self, scaled: &Array2<f64>) -> ndarray::Array1<f64> {
        scaled.dot(&self.weights) + self.intercept
    }
}

impl LinearModel for LinearRegressionFit {
    fn float_model(&self, _classes: &[i64]) -> Result<FloatLinearModel> {
        Ok(FloatLinearModel {
            weights: self.weights.clone().insert_axis(Axis(0)),
            bias: vec![self.intercept],
            kind: crate::program::OutputKind::Regression,
            link: crate::program::Link::Identity,
        })
    }
}

/// Smallest over largest eigenvalue of the Gram matrix below which least squares is taken to
/// have no unique solution (collinear columns).
pub const COLLINEARITY_RATIO: f64 = 1e-9;

/// Whether `x` (`n_rows × n_features`, standardized) has full column rank: more rows than
/// features and a Gram matrix whose eigenvalues stay above [`COLLINEARITY_RATIO`] of the
/// largest. linfa's QR least squares returns some solution for a singular problem instead of
/// failing, so this is checked first.
fn has_unique_least_squares(x: &Array2<f64>) -> bool {
    use linfa_linalg::eigh::EigValsh;
    let (n, d) = x.dim();
    if n <= d {
        return false;
    }
    let gram = x.t().dot(x);
    match gram.eigvalsh() {
        Ok(values) => {
            let max = values.iter().copied().fold(0.0f64, f64::max);
            let min = values.iter().copied().fold(f64::INFINITY, f64::min);
            max > 0.0 && min > COLLINEARITY_RATIO * max
        }
        Err(_) => false,
    }
}

/// Fits least squares on the scaled training set. Features constant on the training rows get
/// weight 0 (they are left out of the fit, which they would make singular), and so does the
/// first category of each one-hot block (the reference level: the block sums to 1 like the
/// intercept); the target is
/// centred first, so a large offset (prices around 1e9) costs no precision. Where least
/// squares has no unique solution (collinear features, fewer rows than features), falls back
/// to ridge ([`LinearSolver::Ridge`]).
///
/// # Errors
/// `Error::Training` when the ridge fallback fails too.
pub fn fit_linear(split: &Split<f64>) -> Result<LinearRegressionFit> {
    let x = split.train.records();
    let y = split.train.targets();
    let d = x.ncols();
    let constant = |j: usize| split.constant_features.contains(&split.feature_names[j]);
    // A one-hot block sums to 1 on every row, as the intercept does: its first varying
    // category is the reference (weight 0), as in a dummy coding.
    let reference: Vec<usize> = split
        .schema
        .categorical_blocks()
        .into_iter()
        .filter_map(|block| block.clone().find(|&j| !constant(j)))
        .collect();
    let keep: Vec<usize> = (0..d)
        .filter(|&j| !constant(j) && !reference.contains(&j))
        .collect();
    let mean = y.mean().unwrap_or(0.0);
    let centred = y.mapv(|v| v - mean);
    let mut weights = ndarray::Array1::zeros(d);
    if keep.is_empty() {
        return Ok(LinearRegressionFit {
            weights,
            intercept: mean,
            solver: LinearSolver::LeastSquares,
        });
    }
    let spread = centred.std(0.0).max(f64::MIN_POSITIVE);
    let data = Dataset::new(x.select(Axis(1), &keep), centred);
    let least_squares = if has_unique_least_squares(data.records()) {
        LinearRegression::new().fit(&data).ok()
    } else {
        None
    };
    // On standardized features a weight far beyond the target's spread means near-collinear
    // columns cancelling each other: exact in floats, noise once weights are quantized.
    let well_posed = least_squares.filter(|m| {
        m.intercept().is_finite()
            && m.params()
                .iter()
                .all(|v| v.is_finite() && v.abs() <= 1e4 * spread)
    });
    let (params, intercept, solver) = match well_posed {
        Some(m) => (
            m.params().clone(),
            m.intercept(),
            LinearSolver::LeastSquares,
        ),
        None => {
            let alpha = RIDGE_FALLBACK_ALPHA;
            let m = linfa_elasticnet::ElasticNet::ridge()
                .penalty(alpha)
                .with_intercept(true)
                .max_iterations(10_000)
                .tolerance(1e-8)
                .fit(&data)
                .map_err(|e| Error::Training(format!("ridge fallback: {e}")))?;
            (
                m.hyperplane().clone(),
                m.intercept(),
                LinearSolver::Ridge { alpha },
            )
        }
    };
    for (k, &j) in keep.iter().enumerate() {
        weights[j] = params[k];
    }
    Ok(LinearRegressionFit {
        weights,
        intercept: intercept + mean,
        solver,
    })
}
