//! Training on plaintext with linfa: binary and multinomial logistic regression, and linear
//! regression, on a split's scaled training set.

use linfa::prelude::*;
use linfa_linear::{FittedLinearRegression, LinearRegression};
use linfa_logistic::{
    FittedLogisticRegression, LogisticRegression, MultiFittedLogisticRegression,
    MultiLogisticRegression,
};
use ndarray::Array2;

use crate::data::Split;
use crate::error::{Error, Result};
use crate::model::{FloatLinearModel, LinearModel};

/// L-BFGS iterations for logistic regression; enough for the shipped datasets to converge.
pub const LOGISTIC_MAX_ITERATIONS: u64 = 300;

/// A fitted logistic regression: binary for two classes, multinomial for more.
#[derive(Debug, Clone)]
pub enum Logistic {
    Binary(FittedLogisticRegression<f64, usize>),
    Multinomial(MultiFittedLogisticRegression<f64, usize>),
}

/// Fits logistic regression on the scaled training set.
pub fn fit_logistic(split: &Split<usize>) -> Result<Logistic> {
    let fitted = if split.classes.len() == 2 {
        Logistic::Binary(
            LogisticRegression::default()
                .max_iterations(LOGISTIC_MAX_ITERATIONS)
                .fit(&split.train)
                .map_err(|e| Error::Training(e.to_string()))?,
        )
    } else {
        Logistic::Multinomial(
            MultiLogisticRegression::default()
                .max_iterations(LOGISTIC_MAX_ITERATIONS)
                .fit(&split.train)
                .map_err(|e| Error::Training(e.to_string()))?,
        )
    };
    Ok(fitted)
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

/// Fits ordinary least squares on the scaled training set.
pub fn fit_linear(split: &Split<f64>) -> Result<FittedLinearRegression<f64>> {
    LinearRegression::new()
        .fit(&split.train)
        .map_err(|e| Error::Training(e.to_string()))
}
