//! Linear and logistic regression: a fitted linfa model (any [`LinearModel`]) becomes an
//! integer program of one leveled linear layer; the split's scaler folds into per-feature input
//! quantization, calibrated on the training rows.

use linfa_logistic::{FittedLogisticRegression, MultiFittedLogisticRegression};

use crate::data::Split;
use crate::error::{Error, Result};
use crate::model::{CompiledModel, FloatLinearModel};
use crate::program::{Decoder, LinearLayer, Link, OutputKind, Prediction, Program, Step};
use crate::quant::{InputQuantizer, Quantization};

/// Fitted linfa models that are linear in their (scaled) inputs.
pub trait LinearModel {
    /// The model's weights, with classes named by `classes` (the split's labels, by index).
    ///
    /// # Errors
    ///
    /// `Error::Compile` if the classes the model was fitted on do not match `classes`.
    fn float_model(&self, classes: &[i64]) -> Result<FloatLinearModel>;
}

impl LinearModel for FittedLogisticRegression<f64, usize> {
    fn float_model(&self, classes: &[i64]) -> Result<FloatLinearModel> {
        // linfa names the larger class (ties: the first met) positive; the program scores
        // class index 1, so a model whose positive class is 0 has its weights negated:
        // P(class 1) = 1 - sigmoid(z) = sigmoid(-z).
        let labels = self.labels();
        let sign = match (labels.neg.class, labels.pos.class) {
            (0, 1) => 1.0,
            (1, 0) => -1.0,
            (neg, pos) => {
                return Err(Error::Compile(format!(
                    "binary logistic regression over class indices {neg}/{pos}, the split has {} classes",
                    classes.len()
                )))
            }
        };
        if classes.len() != 2 {
            return Err(Error::Compile(format!(
                "binary logistic regression on a split of {} classes",
                classes.len()
            )));
        }
        Ok(FloatLinearModel {
            weights: (self.params() * sign).insert_axis(ndarray::Axis(0)),
            bias: vec![self.intercept() * sign],
            kind: OutputKind::Binary {
                classes: [classes[0], classes[1]],
            },
            link: Link::Identity,
        })
    }
}

impl LinearModel for MultiFittedLogisticRegression<f64, usize> {
    fn float_model(&self, classes: &[i64]) -> Result<FloatLinearModel> {
        // Output o scores class index o of the split.
        let fitted = self.classes();
        if fitted.len() != classes.len() || fitted.iter().enumerate().any(|(i, &c)| i != c) {
            return Err(Error::Compile(format!(
                "multinomial model saw classes {fitted:?}, the split has {}",
                classes.len()
            )));
        }
        Ok(FloatLinearModel {
            weights: self.params().t().to_owned(),
            bias: self.intercept().to_vec(),
            kind: OutputKind::Multiclass {
                classes: classes.to_vec(),
            },
            link: Link::Identity,
        })
    }
}

/// Tails tried when calibrating a linear model's input quantizer (fraction of training values
/// ignored at each end of a feature; 0 is min/max): see [`compile_linear`].
pub const CALIBRATION_TAILS: [f64; 5] = [0.0, 0.001, 0.01, 0.05, 0.1];

/// Compiles a fitted linear model: folds the split's scaler into per-feature input quantization
/// (calibrated on the raw training rows), quantizes the folded weights, and plans the encoding.
///
/// Calibration: min/max unless ignoring a tail of the training values
/// ([`CALIBRATION_TAILS`]) makes the quantized model agree with the float one on clearly more
/// training rows (one point of label agreement, or half the squared error for a regression):
/// a few glitch values then cannot squeeze every ordinary value into one level. A regression's
/// constant term stays on the client ([`Decoder::offset`]).
///
/// # Errors
///
/// `Error::Compile` if `quantization` is out of range, the model's classes or feature count
/// do not match `split`, its (or the folded) weights are not finite, or the program does not
/// fit the parameter set.
pub fn compile_linear<M: LinearModel + ?Sized, T>(
    model: &M,
    split: &Split<T>,
    quantization: Quantization,
) -> Result<CompiledModel> {
    quantization.validate()?;
    let float = model.float_model(&split.classes)?;
    let d = split.n_features();
    if float.weights.ncols() != d {
        return Err(Error::Compile(format!(
            "model has {} features, the data {d}",
            float.weights.ncols()
        )));
    }
    if float
        .weights
        .iter()
        .chain(&float.bias)
        .any(|v| !v.is_finite())
    {
        return Err(Error::Compile("the model has non-finite weights".into()));
    }
    // The float model's predictions on the (already scaled) training rows: the reference for
    // calibration, decoded as the client decodes scores.
    let float_decoder = Decoder {
        kind: float.kind.clone(),
        scale: 1.0,
        offset: 0.0,
        link: float.link,
    };
    let logits = split.train.records().dot(&float.weights.t());
    let reference = logits
        .rows()
        .into_iter()
        .map(|z| {
            let z: Vec<f64> = z.iter().zip(&float.bias).map(|(v, b)| v + b).collect();
            float_decoder.decode_real(&z)
        })
        .collect::<Result<Vec<Prediction>>>()?;
    let regression = float.kind == OutputKind::Regression;
    let mut best: Option<(f64, Program, Decoder, InputQuantizer)> = None;
    let mut required = f64::INFINITY;
    for &tail in &CALIBRATION_TAILS {
        let quantizer =
            InputQuantizer::calibrate_clipped(&split.train_raw, quantization.input_bits, tail);
        let (program, decoder) = linear_program(&float, split, &quantizer, quantization)?;
        let loss = calibration_loss(&program, &decoder, &quantizer, split, &reference)?;
        match &best {
            None => {
                // Min/max is kept unless a clipped range is clearly better.
                required = if regression { 0.5 * loss } else { loss - 0.01 };
                best = Some((loss, program, decoder, quantizer));
            }
            Some((b, ..)) if loss < required && loss < *b => {
                best = Some((loss, program, decoder, quantizer));
            }
            Some(_) => {}
        }
    }
    let (_, program, decoder, quantizer) = best.expect("at least one calibration");
    let n_out = float.weights.nrows();
    let description = format!(
        "{d}→{n_out} linear, {}-bit inputs and weights",
        quantization.input_bits
    );
    CompiledModel::new(
        split,
        quantization,
        quantizer,
        program,
        decoder,
        description,
    )
}

/// Largest integer bias of a compiled linear classifier (2^20), far inside the program's
/// bound: the plan's noise budget then holds for any input.
const BIAS_LEVELS: f64 = (1u64 << 20) as f64;

/// The integer program and decoder of a float linear model under one input quantizer.
fn linear_program<T>(
    float: &FloatLinearModel,
    split: &Split<T>,
    quantizer: &InputQuantizer,
    quantization: Quantization,
) -> Result<(Program, Decoder)> {
    let d = split.n_features();
    let (mean, std) = (&split.scaler.mean, &split.scaler.std);
    // x_scaled = (low + step*q - mean) / std, so z = sum (w*step/std) q + (b + sum w*(low-mean)/std).
    let n_out = float.weights.nrows();
    let mut folded = Vec::with_capacity(n_out * d);
    let mut folded_bias = Vec::with_capacity(n_out);
    for o in 0..n_out {
        let mut b = float.bias[o];
        for i in 0..d {
            let w = float.weights[[o, i]];
            folded.push(w * quantizer.step[i] / std[i]);
            b += w * (quantizer.low[i] - mean[i]) / std[i];
        }
        folded_bias.push(b);
    }
    if folded.iter().chain(&folded_bias).any(|v| !v.is_finite()) {
        return Err(Error::Compile(
            "the folded weights are not finite (a feature's scale overflows)".into(),
        ));
    }
    // A feature constant on the training rows carries no information: its weight is 0 (a
    // tiny L2 remainder would otherwise set the quantization scale on its own).
    for (i, name) in split.feature_names.iter().enumerate() {
        if split.constant_features.contains(name) {
            for o in 0..n_out {
                folded[o * d + i] = 0.0;
            }
        }
    }
    // Softmax and argmax ignore a constant added to every class: centred biases stay small.
    if n_out > 1 {
        let mean = folded_bias.iter().sum::<f64>() / n_out as f64;
        folded_bias.iter_mut().for_each(|b| *b -= mean);
    }
    // A regression adds its constant on the client; a classifier's bias decides the argmax
    // and stays in the program.
    let regression = float.kind == OutputKind::Regression;
    let offset = if regression { folded_bias[0] } else { 0.0 };
    // One scale for weights and biases: the weights' symmetric scale, coarsened only where a
    // bias would not fit the program's bound (weights a million times smaller than the bias
    // cannot move the result).
    let max_int = ((1i64 << (quantization.weight_bits - 1)) - 1) as f64;
    let max_weight = folded.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let max_bias = if regression {
        0.0
    } else {
        folded_bias.iter().fold(0.0f64, |m, v| m.max(v.abs()))
    };
    let mut scale = (max_weight / max_int).max(max_bias / BIAS_LEVELS);
    if !(scale > 0.0 && scale.is_finite()) {
        scale = 1.0;
    }
    let weights: Vec<i64> = folded
        .iter()
        .map(|w| (w / scale).round().clamp(-max_int, max_int) as i64)
        .collect();
    let bias = folded_bias
        .iter()
        .map(|b| {
            if regression {
                0
            } else {
                (b / scale).round() as i64
            }
        })
        .collect();
    let layer = LinearLayer::new(d, n_out, weights, bias)?;
    let program = Program {
        n_inputs: d,
        input_bits: quantization.input_bits,
        steps: vec![Step::Linear(layer)],
    };
    let decoder = Decoder {
        kind: float.kind.clone(),
        scale,
        offset,
        link: float.link,
    };
    Ok((program, decoder))
}

/// How far a quantized linear model is from its float reference on the training rows: the
/// fraction of labels that differ (classifiers) or the mean squared difference (regression).
fn calibration_loss<T>(
    program: &Program,
    decoder: &Decoder,
    quantizer: &InputQuantizer,
    split: &Split<T>,
    reference: &[Prediction],
) -> Result<f64> {
    let mut loss = 0.0;
    for (row, want) in split.train_raw.rows().into_iter().zip(reference) {
        let q = quantizer.quantize(&row.to_vec()).values;
        loss += match (decoder.decode(&program.simulate_scores(&q)?)?, want) {
            (Prediction::Value(v), Prediction::Value(w)) => (v - w).powi(2),
            (got, want) => f64::from(u8::from(got.class_index() != want.class_index())),
        };
    }
    Ok(loss / reference.len().max(1) as f64)
}
