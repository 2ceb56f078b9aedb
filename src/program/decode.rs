//! The client-side end of a program: what its outputs mean ([`OutputKind`]) and how decrypted
//! integers become a [`Prediction`] (dequantize, sigmoid or softmax, argmax).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What the model's outputs mean, and how the client turns decrypted integers into an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OutputKind {
    /// One logit: `score >= 0` means `classes[1]`.
    Binary {
        /// The two labels in label order: `classes[0]` for a negative score.
        classes: [i64; 2],
    },
    /// One logit per class: the largest wins.
    Multiclass {
        /// The labels in label order, one per logit (`n_classes`).
        classes: Vec<i64>,
    },
    /// One real value.
    Regression,
}

impl OutputKind {
    /// The class labels in label order (`n_classes`); empty for a regression.
    pub fn classes(&self) -> &[i64] {
        match self {
            OutputKind::Binary { classes } => classes,
            OutputKind::Multiclass { classes } => classes,
            OutputKind::Regression => &[],
        }
    }
}

/// The link of a generalized linear model: the encrypted program computes the linear
/// predictor `η = w·x + b` exactly, and the client maps it to the mean `μ = link⁻¹(η)` after
/// decryption (scikit-learn's `PoissonRegressor`, `GammaRegressor` and `TweedieRegressor` use
/// the log link).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Link {
    /// `μ = η`: ordinary and penalized least squares.
    #[default]
    Identity,
    /// `μ = exp(η)`: Poisson, Gamma and Tweedie regression.
    Log,
}

impl Link {
    /// The mean for a linear predictor: `η` or `exp(η)`.
    pub fn inverse(self, eta: f64) -> f64 {
        match self {
            Link::Identity => eta,
            Link::Log => eta.exp(),
        }
    }
}

/// Client-side post-processing: `real = integer * scale`, then sigmoid/softmax/argmax, or for
/// a regression `offset` and the inverse link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decoder {
    /// What the outputs mean (binary, multiclass or regression).
    pub kind: OutputKind,
    /// Real value of one integer score unit.
    pub scale: f64,
    /// Added to a regression's dequantized score on the client: the model's constant term
    /// stays out of the encrypted computation, so a large target offset (1e9 + small
    /// variations) costs no plaintext bits. 0 for classifiers.
    #[serde(default)]
    pub offset: f64,
    /// A regression's link, applied last on the client ([`Link::Identity`] for classifiers).
    #[serde(default)]
    pub link: Link,
}

/// A decoded prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Prediction {
    /// A classifier's answer.
    Class {
        /// Index into the model's classes (0-based, in label order).
        index: usize,
        /// The label as it appeared in the training data.
        label: i64,
        /// Class probabilities (sigmoid or softmax of the dequantized logits).
        probabilities: Vec<f64>,
    },
    /// A regressor's answer, in the target's units.
    Value(f64),
}

impl Prediction {
    /// The class index, or `None` for a regression value.
    pub fn class_index(&self) -> Option<usize> {
        match self {
            Prediction::Class { index, .. } => Some(*index),
            Prediction::Value(_) => None,
        }
    }

    /// The regression value, or `None` for a class.
    pub fn value(&self) -> Option<f64> {
        match self {
            Prediction::Value(v) => Some(*v),
            Prediction::Class { .. } => None,
        }
    }
}

impl Decoder {
    /// Number of scores the decoder expects: 1 for binary and regression, one per class
    /// otherwise.
    pub fn n_outputs(&self) -> usize {
        match &self.kind {
            OutputKind::Binary { .. } | OutputKind::Regression => 1,
            OutputKind::Multiclass { classes } => classes.len(),
        }
    }

    /// A prediction from a class index alone (label mode): no probabilities.
    ///
    /// # Errors
    ///
    /// `Error::Input` if `index` is not a class of the model, or the model is a regressor.
    pub fn decode_label(&self, index: usize) -> Result<Prediction> {
        let label = match &self.kind {
            OutputKind::Binary { classes } => classes.get(index).copied(),
            OutputKind::Multiclass { classes } => classes.get(index).copied(),
            OutputKind::Regression => None,
        }
        .ok_or_else(|| Error::Input(format!("class index {index} out of range")))?;
        Ok(Prediction::Class {
            index,
            label,
            probabilities: Vec::new(),
        })
    }

    /// A prediction from real-valued scores (a float model's logits, or a regression's linear
    /// predictor including its constant): sigmoid or softmax, argmax, first maximum on ties; or
    /// the inverse link of a regression.
    ///
    /// # Errors
    ///
    /// `Error::Shape` when the number of scores is not [`Decoder::n_outputs`].
    pub fn decode_real(&self, real: &[f64]) -> Result<Prediction> {
        if real.len() != self.n_outputs() {
            return Err(Error::shape("scores", self.n_outputs(), real.len()));
        }
        Ok(match &self.kind {
            OutputKind::Binary { classes } => {
                let p = 1.0 / (1.0 + (-real[0]).exp());
                let index = usize::from(real[0] >= 0.0);
                Prediction::Class {
                    index,
                    label: classes[index],
                    probabilities: vec![1.0 - p, p],
                }
            }
            OutputKind::Multiclass { classes } => {
                let index = (0..real.len()).fold(0, |b, i| if real[i] > real[b] { i } else { b });
                let top = real[index];
                let exp: Vec<f64> = real.iter().map(|r| (r - top).exp()).collect();
                let total: f64 = exp.iter().sum();
                Prediction::Class {
                    index,
                    label: classes[index],
                    probabilities: exp.iter().map(|e| e / total).collect(),
                }
            }
            OutputKind::Regression => Prediction::Value(self.link.inverse(real[0])),
        })
    }

    /// A prediction from decrypted integer scores ([`Decoder::n_outputs`] of them):
    /// dequantizes by `scale` (adding `offset` and applying the inverse link for a regression),
    /// then sigmoid or softmax and argmax on the integers; first maximum on ties.
    ///
    /// # Errors
    ///
    /// `Error::Shape` when the number of scores is not [`Decoder::n_outputs`].
    pub fn decode(&self, scores: &[i64]) -> Result<Prediction> {
        if scores.len() != self.n_outputs() {
            return Err(Error::shape("scores", self.n_outputs(), scores.len()));
        }
        // A positive scale keeps the integers' order and ties (scores stay below 2^53), so
        // the label is the integer argmax; the probabilities come from the real scores.
        let mut real: Vec<f64> = scores.iter().map(|&s| s as f64 * self.scale).collect();
        if self.kind == OutputKind::Regression {
            real[0] += self.offset;
        }
        self.decode_real(&real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoders_turn_scores_into_predictions() {
        let binary = Decoder {
            kind: OutputKind::Binary { classes: [3, 7] },
            scale: 0.5,
            offset: 0.0,
            link: Link::Identity,
        };
        let Prediction::Class {
            index,
            label,
            probabilities,
        } = binary.decode(&[2]).unwrap()
        else {
            panic!("a class")
        };
        assert_eq!((index, label), (1, 7));
        assert!((probabilities[1] - 1.0 / (1.0 + (-1.0f64).exp())).abs() < 1e-12);
        let regression = Decoder {
            kind: OutputKind::Regression,
            scale: 0.25,
            offset: 1e9,
            link: Link::Identity,
        };
        assert_eq!(
            regression.decode(&[4]).unwrap(),
            Prediction::Value(1e9 + 1.0)
        );
        assert!(matches!(
            regression.decode(&[1, 2]),
            Err(Error::Shape {
                expected: 1,
                found: 2,
                ..
            })
        ));
        let multi = Decoder {
            kind: OutputKind::Multiclass {
                classes: vec![0, 1, 2],
            },
            scale: 1.0,
            offset: 0.0,
            link: Link::Identity,
        };
        // A log link: exp of the dequantized predictor plus offset, on the client.
        let poisson = Decoder {
            kind: OutputKind::Regression,
            scale: 0.5,
            offset: 1.0,
            link: Link::Log,
        };
        let Some(mu) = poisson.decode(&[2]).unwrap().value() else {
            panic!("a value")
        };
        assert!((mu - 2.0f64.exp()).abs() < 1e-12, "{mu}");
        // First maximum on ties, as linfa's argmax.
        assert_eq!(multi.decode(&[1, 5, 5]).unwrap().class_index(), Some(1));
        assert_eq!(
            multi.decode_real(&[0.1, 0.0, -1.0]).unwrap().class_index(),
            Some(0)
        );
    }
}
