//! One way to compile every family: the [`Compile`] trait that every fitted model implements
//! (linear and logistic regression through [`LinearModel`], the MLP, trees and forests), one
//! [`Options`] type (quantization bits, output mode) and the [`compile`] function. Each
//! compiled model keeps its float twin (the fitted model itself) for
//! [`CompiledModel::predict`] in [`Mode::Float`](crate::model::Mode::Float).
//!
//! One file per family: [`linear`], [`mlp`], [`forest`]; their `compile_*` functions are the
//! lower-level entries the trait calls.

pub mod forest;
pub mod imported;
pub mod linear;
pub mod mlp;

pub use crate::model::FloatLinearModel;
pub use forest::compile_forest;
pub use linear::{compile_linear, LinearModel, CALIBRATION_TAILS};
pub use mlp::compile_mlp;

use crate::data::Split;
use crate::error::{Error, Result};
use crate::fhe::OutputMode;
use crate::model::{CompiledModel, FloatTwin};
use crate::quant::Quantization;
use crate::train::mlp::Mlp;
use crate::train::trees::TrainedForest;

/// How to compile a fitted model.
///
/// ```
/// use fhe_ml::prelude::*;
/// let options = Options::bits(6).output(OutputMode::TopK(3));
/// assert_eq!(options.quantization, Some(Quantization::bits(6)));
/// assert_eq!(Options::from(OutputMode::Label).quantization, None); // the trained width
/// ```
///
/// `quantization` applies to linear models (inputs and weights, default 8 bits); an MLP's and a
/// forest's input bits are fixed when they are trained (their training sees the quantized
/// inputs), so for them it must be `None` or equal to the trained width. `output` chooses what
/// the server returns: scores (default), the sanitized label, or the top K labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// Bits of inputs and weights; `None`: 8 for linear models, the trained width otherwise.
    pub quantization: Option<Quantization>,
    /// What the server returns.
    pub output: OutputMode,
}

impl Options {
    /// `bits` for inputs and weights (2..=16), scores out.
    pub fn bits(bits: u32) -> Self {
        Self {
            quantization: Some(Quantization::bits(bits)),
            ..Self::default()
        }
    }

    /// The same options serving `output` (label and top-K modes: classifiers only).
    pub fn output(mut self, output: OutputMode) -> Self {
        self.output = output;
        self
    }
}

impl From<Quantization> for Options {
    fn from(quantization: Quantization) -> Self {
        Self {
            quantization: Some(quantization),
            output: OutputMode::Scores,
        }
    }
}

impl From<OutputMode> for Options {
    fn from(output: OutputMode) -> Self {
        Self {
            quantization: None,
            output,
        }
    }
}

/// A fitted model that compiles to an integer program for the split it was trained on
/// (`Split<usize>` for classifiers, `Split<f64>` for regressions).
pub trait Compile<T> {
    /// The compiled model, its float twin attached.
    ///
    /// # Errors
    /// `Error::Compile` when the model does not fit the parameter set or the options do not
    /// apply to it (bits for a model trained at another width, label mode for a regression).
    fn compile_with(&self, split: &Split<T>, options: &Options) -> Result<CompiledModel>;
}

impl<M: LinearModel, T> Compile<T> for M {
    fn compile_with(&self, split: &Split<T>, options: &Options) -> Result<CompiledModel> {
        let quantization = options.quantization.unwrap_or_default();
        Ok(compile_linear(self, split, quantization)?
            .with_output(options.output)?
            .with_float(FloatTwin::Linear {
                model: self.float_model(&split.classes)?,
                scaler: split.scaler.clone(),
            }))
    }
}

/// Refuses bits other than those a model was trained at.
fn trained_bits(family: &str, trained: u32, options: &Options) -> Result<()> {
    match options.quantization {
        Some(q) if q.input_bits != trained => Err(Error::Compile(format!(
            "this {family} was trained on {trained}-bit inputs; its width is a training parameter, not a compile option ({} asked)",
            q.input_bits
        ))),
        _ => Ok(()),
    }
}

impl Compile<usize> for Mlp {
    fn compile_with(&self, split: &Split<usize>, options: &Options) -> Result<CompiledModel> {
        trained_bits("MLP", self.config.input_bits, options)?;
        Ok(compile_mlp(self, split)?
            .with_output(options.output)?
            .with_float(FloatTwin::Mlp(Box::new(self.clone()))))
    }
}

impl Compile<usize> for TrainedForest {
    fn compile_with(&self, split: &Split<usize>, options: &Options) -> Result<CompiledModel> {
        let family = if self.config.trees == 1 {
            "tree"
        } else {
            "forest"
        };
        trained_bits(family, self.config.input_bits, options)?;
        Ok(compile_forest(self, split)?
            .with_output(options.output)?
            .with_float(FloatTwin::Forest(Box::new(self.plain.clone()))))
    }
}

/// Compiles any fitted model (logistic or linear regression, MLP, tree, forest) for the split
/// it was trained on: the one entry for every family.
///
/// `options` is an [`Options`], or a [`Quantization`] or an [`OutputMode`] alone.
///
/// # Errors
/// `Error::Compile` as [`Compile::compile_with`] says.
///
/// # Example
/// ```
/// use fhe_ml::prelude::*;
/// # fn main() -> fhe_ml::Result<()> {
/// let data = fhe_ml::data::parse_csv_str(fhe_ml::data::BREAST_CANCER_CSV, "bc")?.split(0.2, 42)?;
/// let fitted = LogisticParams::default().fit(&data)?;
/// let model = fhe_ml::compile(&fitted, &data, Options::bits(8))?;
/// let row = data.test_raw.row(0).to_vec();
/// assert_eq!(model.predict(&row, Mode::Clear)?, model.predict(&row, Mode::Encrypted)?);
/// # Ok(()) }
/// ```
pub fn compile<T, M: Compile<T> + ?Sized>(
    model: &M,
    split: &Split<T>,
    options: impl Into<Options>,
) -> Result<CompiledModel> {
    model.compile_with(split, &options.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Mode;
    use crate::train::params::{ForestParams, LinearParams, LogisticParams, MlpParams};

    /// 60 rows, two features; the class is whether a + b > 0 (a margin of 0.4 either side).
    fn split() -> Split<usize> {
        let mut text = String::from("a,b,target\n");
        for i in 0..60 {
            let a = f64::from(i % 10) / 5.0 - 0.9;
            let y = i % 2;
            let b = if y == 1 {
                0.4 - a + 0.1 * f64::from(i % 3)
            } else {
                -0.4 - a
            };
            text += &format!("{a},{b},{y}\n");
        }
        crate::data::parse_csv_str(&text, "t")
            .unwrap()
            .split(0.25, 7)
            .unwrap()
    }

    #[test]
    fn options_convert_from_bits_and_modes() {
        assert_eq!(Options::bits(6).quantization, Some(Quantization::bits(6)));
        assert_eq!(Options::from(OutputMode::Label).output, OutputMode::Label);
        assert_eq!(Options::from(Quantization::bits(5)), Options::bits(5));
        assert_eq!(
            Options::default().output(OutputMode::TopK(2)).quantization,
            None
        );
    }

    #[test]
    fn every_family_compiles_with_its_float_twin() {
        let data = split();
        let row = data.test_rows()[0].clone();
        let logistic = compile(
            &LogisticParams::default().fit(&data).unwrap(),
            &data,
            Options::bits(8),
        )
        .unwrap();
        let forest = compile(
            &ForestParams::tree().depth(2).fit(&data).unwrap(),
            &data,
            Options::default(),
        )
        .unwrap();
        let mlp = compile(
            &MlpParams::default()
                .hidden(&[4])
                .epochs(5)
                .fit(&data)
                .unwrap(),
            &data,
            Options::default(),
        )
        .unwrap();
        for model in [&logistic, &forest, &mlp] {
            assert!(
                !matches!(model.float_twin(), FloatTwin::None),
                "{}",
                model.architecture()
            );
            model.predict(&row, Mode::Float).unwrap();
            model.predict(&row, Mode::Clear).unwrap();
        }
        // Separable data: the clear twin of the linear model is right on every test row.
        for (r, t) in data.test_rows().iter().zip(data.test_targets()) {
            assert_eq!(
                logistic.predict(r, Mode::Clear).unwrap().class_index(),
                Some(t)
            );
        }
    }

    #[test]
    fn trained_widths_are_not_compile_options() {
        let data = split();
        let tree = ForestParams::tree().fit(&data).unwrap();
        assert!(compile(&tree, &data, Options::bits(4)).is_ok());
        let err = compile(&tree, &data, Options::bits(6)).unwrap_err();
        assert!(err.to_string().contains("trained on 4-bit inputs"), "{err}");
        let regression = crate::data::parse_csv_str("a,target\n1,2\n2,4\n3,6\n4,8\n5,10\n", "r")
            .unwrap()
            .split_regression(0.2, 1)
            .unwrap();
        let fitted = LinearParams.fit(&regression).unwrap();
        assert!(matches!(
            compile(&fitted, &regression, OutputMode::Label),
            Err(Error::Compile(_))
        ));
    }
}
