//! Bring your own model: reads ONNX files written by scikit-learn's exporter (skl2onnx),
//! XGBoost's (onnxmltools) and PyTorch's (`torch.onnx.export`) into an [`OnnxModel`], the
//! float model the file describes, which [`crate::compile`] turns into an integer program like
//! any fitted model.
//!
//! What this module owns: decoding the protobuf (with `onnx-protobuf`, the message types of
//! ONNX's own `onnx.proto`), walking the graph, and reducing it to one of three bodies, each
//! checked against the ONNX operator specifications (ai.onnx and ai.onnx.ml):
//! - [`Body::Net`] with no hidden layer: a linear model (`LinearClassifier`,
//!   `LinearRegressor`, `Gemm`, `MatMul` + `Add`), with any `Scaler` or element-wise affine
//!   preprocessing in front folded into its weights;
//! - [`Body::Net`] with hidden layers: a ReLU network (`Gemm`/`MatMul` + `Add`, `Relu`);
//! - [`Body::Trees`]: a tree ensemble (`TreeEnsembleClassifier`, `TreeEnsembleRegressor`).
//!
//! What a classifier's scores mean is its [`Head`]. Anything else (another operator, an
//! attribute value the reduction does not reproduce exactly, a shape that does not line up) is
//! refused with [`Error::Onnx`] naming the node, its operator and what is supported: nothing is
//! approximated. The float model then answers as the framework did ([`OnnxModel::scores`],
//! [`OnnxModel::label`]); quantization happens only in the compiler
//! ([`crate::compiler::imported`]).

mod graph;
mod tensor;
pub mod trees;

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use ndarray::Array2;

use crate::error::{Error, Result};
use crate::program::Prediction;
pub use trees::{Comparison, ImportedTree, TreeEnsemble, TreeNode};

/// Largest ONNX file read, in bytes (256 MiB): far above any model fhe-ml can compile.
pub const MAX_ONNX_BYTES: usize = 256 << 20;

/// Where an ONNX model comes from: a file path (`&str`, `&Path`, `PathBuf`) or its bytes.
#[derive(Debug, Clone)]
pub enum OnnxSource<'a> {
    /// A file to read.
    Path(PathBuf),
    /// The serialized `ModelProto`.
    Bytes(Cow<'a, [u8]>),
}

impl From<&str> for OnnxSource<'_> {
    fn from(path: &str) -> Self {
        OnnxSource::Path(path.into())
    }
}
impl From<String> for OnnxSource<'_> {
    fn from(path: String) -> Self {
        OnnxSource::Path(path.into())
    }
}
impl From<&String> for OnnxSource<'_> {
    fn from(path: &String) -> Self {
        OnnxSource::Path(path.into())
    }
}
impl From<&Path> for OnnxSource<'_> {
    fn from(path: &Path) -> Self {
        OnnxSource::Path(path.into())
    }
}
impl From<PathBuf> for OnnxSource<'_> {
    fn from(path: PathBuf) -> Self {
        OnnxSource::Path(path)
    }
}
impl From<&PathBuf> for OnnxSource<'_> {
    fn from(path: &PathBuf) -> Self {
        OnnxSource::Path(path.clone())
    }
}
impl<'a> From<&'a [u8]> for OnnxSource<'a> {
    fn from(bytes: &'a [u8]) -> Self {
        OnnxSource::Bytes(Cow::Borrowed(bytes))
    }
}
impl From<Vec<u8>> for OnnxSource<'_> {
    fn from(bytes: Vec<u8>) -> Self {
        OnnxSource::Bytes(Cow::Owned(bytes))
    }
}

/// Reads an ONNX model (a path or its bytes) into the float model it describes.
///
/// ```
/// # fn main() -> fhe_ml::Result<()> {
/// let model = fhe_ml::import::onnx("tests/fixtures/onnx/bc-logistic.onnx")?;
/// assert_eq!((model.n_features(), model.classes()), (30, Some(&[0, 1][..])));
/// # Ok(()) }
/// ```
///
/// # Errors
/// `Error::Io` when the file cannot be read; `Error::TooLarge` over [`MAX_ONNX_BYTES`];
/// `Error::ModelFile` when the bytes are not an ONNX `ModelProto` or its graph is malformed
/// (no input, a tensor of the wrong size); `Error::Onnx` naming the first node whose operator,
/// attribute or shape is not supported.
pub fn onnx<'a>(source: impl Into<OnnxSource<'a>>) -> Result<OnnxModel> {
    let source = source.into();
    let bytes: Cow<'_, [u8]> = match &source {
        OnnxSource::Path(path) => {
            let len = std::fs::metadata(path)
                .map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?
                .len();
            check_size(len as usize)?;
            Cow::Owned(std::fs::read(path).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?)
        }
        OnnxSource::Bytes(bytes) => Cow::Borrowed(bytes.as_ref()),
    };
    check_size(bytes.len())?;
    let proto = <onnx_protobuf::ModelProto as onnx_protobuf::Message>::parse_from_bytes(&bytes)
        .map_err(|e| Error::ModelFile(format!("not an ONNX model: {e}")))?;
    graph::reduce(&proto)
}

fn check_size(len: usize) -> Result<()> {
    if len > MAX_ONNX_BYTES {
        return Err(Error::TooLarge {
            what: "ONNX file (bytes)".into(),
            size: len,
            limit: MAX_ONNX_BYTES,
        });
    }
    Ok(())
}

/// A dense layer of an imported network: `y = W x + b`, `W` is `n_outputs × n_inputs`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// `W`, `n_outputs × n_inputs`.
    pub weights: Array2<f64>,
    /// `b`, `n_outputs`.
    pub bias: Vec<f64>,
}

impl Dense {
    /// The identity on `n` values.
    pub fn identity(n: usize) -> Self {
        Self {
            weights: Array2::eye(n),
            bias: vec![0.0; n],
        }
    }

    /// `W x + b` for one input vector (`n_inputs`).
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        self.weights
            .rows()
            .into_iter()
            .zip(&self.bias)
            .map(|(w, b)| w.iter().zip(x).map(|(w, x)| w * x).sum::<f64>() + b)
            .collect()
    }

    /// Inputs: `n_inputs`.
    pub fn n_inputs(&self) -> usize {
        self.weights.ncols()
    }

    /// Outputs: `n_outputs`.
    pub fn n_outputs(&self) -> usize {
        self.weights.nrows()
    }

    /// The outputs `rows` of this layer, in that order (a class reordering).
    pub fn select_rows(&self, rows: &[usize]) -> Dense {
        Dense {
            weights: self.weights.select(ndarray::Axis(0), rows),
            bias: rows.iter().map(|&r| self.bias[r]).collect(),
        }
    }

    /// `self` after `first`: `W (W1 x + b1) + b`.
    pub fn after(&self, first: &Dense) -> Dense {
        Dense {
            weights: self.weights.dot(&first.weights),
            bias: self.apply(&first.bias),
        }
    }
}

/// The computation an imported model performs on a row of raw features.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// `hidden` dense layers, each followed by a ReLU, then `output` (no hidden layer: a
    /// linear model). Preprocessing (`Scaler`, affine `Mul`/`Add`/`Sub`/`Div`) is folded into
    /// the first layer.
    Net {
        /// Hidden layers, input first (empty for a linear model).
        hidden: Vec<Dense>,
        /// The output layer: one row per score.
        output: Dense,
    },
    /// A tree ensemble on the raw features.
    Trees(TreeEnsemble),
}

/// How a classifier's scores become probabilities and a label, as the ONNX operator defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// One real value (regressions).
    Regression,
    /// One score `z` for the second class: probabilities `[1 - σ(z), σ(z)]`, the second class
    /// when `z > 0` (`post_transform = LOGISTIC`, a `Sigmoid` output).
    Logistic,
    /// One score `p`, already the second class's probability: `[1 - p, p]`, the second class
    /// when `p > 0.5` (a binary tree ensemble with non-negative weights).
    Probability,
    /// One decision value `z` (a linear SVM's `decision_function`): the second class when
    /// `z > 0`.
    Decision,
    /// One score per class, the probabilities `softmax(z)`; the largest wins.
    Softmax,
    /// One score per class, read as they are (probabilities of a forest, a network's logits);
    /// the largest wins (the first of equal scores).
    Argmax,
}

/// A model read from an ONNX file: the float computation, what its outputs mean, and where
/// it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxModel {
    /// The exporter, as the file names it (`"skl2onnx 1.20.0"`, `"pytorch 2.9.1"`).
    pub producer: String,
    /// The operators read, in graph order, without repeats (`["Scaler", "LinearClassifier"]`).
    pub operators: Vec<String>,
    n_features: usize,
    classes: Option<Vec<i64>>,
    body: Body,
    head: Head,
}

impl OnnxModel {
    /// A tree ensemble made in memory, in the form an imported one takes (fhe-ml's gradient-
    /// boosted trees, [`crate::train::gbdt`]): compiled and served exactly as a read one.
    /// `classes` is `None` for a regression (`head` then [`Head::Regression`]).
    pub(crate) fn from_trees(
        producer: String,
        n_features: usize,
        classes: Option<Vec<i64>>,
        trees: TreeEnsemble,
        head: Head,
    ) -> Self {
        Self {
            producer,
            operators: vec![if classes.is_some() {
                "TreeEnsembleClassifier".into()
            } else {
                "TreeEnsembleRegressor".into()
            }],
            n_features,
            classes,
            body: Body::Trees(trees),
            head,
        }
    }

    /// Features per row (`n_features`), as the graph's input declares them.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Class labels, in the model's score order (`n_classes`); `None` for a regression.
    pub fn classes(&self) -> Option<&[i64]> {
        self.classes.as_deref()
    }

    /// Whether it is a classifier.
    pub fn is_classifier(&self) -> bool {
        self.head != Head::Regression
    }

    /// The computation.
    pub fn body(&self) -> &Body {
        &self.body
    }

    /// What its scores mean.
    pub fn head(&self) -> Head {
        self.head
    }

    /// A short description: `"30→1 linear (Scaler, LinearClassifier; skl2onnx 1.20.0)"`.
    pub fn describe(&self) -> String {
        let shape = match &self.body {
            Body::Net { hidden, output } if hidden.is_empty() => {
                format!("{}→{} linear", self.n_features, output.n_outputs())
            }
            Body::Net { hidden, output } => {
                let mut widths = vec![self.n_features.to_string()];
                widths.extend(hidden.iter().map(|l| l.n_outputs().to_string()));
                widths.push(output.n_outputs().to_string());
                format!("{} ReLU network", widths.join("-"))
            }
            Body::Trees(t) => format!(
                "{}-tree ensemble of depth {} or less",
                t.trees.len(),
                t.max_depth()
            ),
        };
        format!("{shape} ({}; {})", self.operators.join(", "), self.producer)
    }

    fn check(&self, row: &[f64]) -> Result<()> {
        crate::data::check_row(row, self.n_features)
    }

    /// The raw scores of one row (`n_features` values): logits, margins, decision values, a
    /// forest's summed leaf weights or the regression value, before the head's transform.
    ///
    /// # Errors
    /// `Error::Shape` for a row of the wrong length, `Error::Input` for a non-finite value.
    pub fn raw_scores(&self, row: &[f64]) -> Result<Vec<f64>> {
        self.check(row)?;
        Ok(match &self.body {
            Body::Net { hidden, output } => {
                let mut h = row.to_vec();
                for layer in hidden {
                    h = layer.apply(&h).into_iter().map(|v| v.max(0.0)).collect();
                }
                output.apply(&h)
            }
            Body::Trees(trees) => trees.scores(row),
        })
    }

    /// What the framework's own prediction returns for one row: `predict_proba` for a
    /// probabilistic classifier (`n_classes` values), `decision_function` for a linear SVM (one
    /// value), the logits of a network, `predict` for a regression (one value).
    ///
    /// # Errors
    /// As [`OnnxModel::raw_scores`].
    pub fn scores(&self, row: &[f64]) -> Result<Vec<f64>> {
        Ok(self.head.scores(self.raw_scores(row)?))
    }

    /// The predicted class index (into [`OnnxModel::classes`]), as the ONNX operator decides
    /// it; `None` for a regression.
    ///
    /// # Errors
    /// As [`OnnxModel::raw_scores`].
    pub fn class_index(&self, row: &[f64]) -> Result<Option<usize>> {
        Ok(self.head.class_index(&self.raw_scores(row)?))
    }

    /// The predicted label (classifiers), as the framework's `predict` returns it.
    ///
    /// # Errors
    /// As [`OnnxModel::raw_scores`].
    pub fn label(&self, row: &[f64]) -> Result<Option<i64>> {
        let classes = self.classes.as_deref().unwrap_or(&[]);
        Ok(self.class_index(row)?.and_then(|i| classes.get(i).copied()))
    }

    /// The float prediction as fhe-ml reports it: the class with its probabilities (the
    /// model's own where it has them, else the sigmoid or softmax of its scores), or the
    /// regression value.
    ///
    /// # Errors
    /// As [`OnnxModel::raw_scores`].
    pub fn predict(&self, row: &[f64]) -> Result<Prediction> {
        let z = self.raw_scores(row)?;
        let Some(index) = self.head.class_index(&z) else {
            return Ok(Prediction::Value(z[0]));
        };
        let probabilities = match (self.head, &self.body) {
            (Head::Decision, _) => Head::Logistic.scores(z),
            // A forest's scores are averaged probabilities; a network's are logits.
            (Head::Argmax, Body::Trees(_)) => z,
            (Head::Argmax, Body::Net { .. }) => softmax(&z),
            (head, _) => head.scores(z),
        };
        let label = self
            .classes
            .as_ref()
            .and_then(|c| c.get(index).copied())
            .unwrap_or(index as i64);
        Ok(Prediction::Class {
            index,
            label,
            probabilities,
        })
    }
}

impl Head {
    /// The framework's scores from the raw ones (see [`OnnxModel::scores`]).
    fn scores(self, z: Vec<f64>) -> Vec<f64> {
        match self {
            Head::Logistic => {
                let p = sigmoid(z[0]);
                vec![1.0 - p, p]
            }
            Head::Probability => vec![1.0 - z[0], z[0]],
            Head::Softmax => softmax(&z),
            Head::Regression | Head::Decision | Head::Argmax => z,
        }
    }

    /// The class index the ONNX operator picks from the raw scores; `None` for a regression.
    fn class_index(self, z: &[f64]) -> Option<usize> {
        match self {
            Head::Regression => None,
            Head::Logistic | Head::Decision => Some(usize::from(z[0] > 0.0)),
            Head::Probability => Some(usize::from(z[0] > 0.5)),
            Head::Softmax | Head::Argmax => Some(argmax(z)),
        }
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn softmax(z: &[f64]) -> Vec<f64> {
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// The first index of the largest value.
fn argmax(z: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in z.iter().enumerate() {
        if v > z[best] {
            best = i;
        }
    }
    best
}
