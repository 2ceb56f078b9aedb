//! Compilation: a fitted float linear model plus its training split becomes a `CompiledModel`
//! (input quantizer, integer program, decoder and encoding plan), which hands out the client's
//! and the server's parts.

use linfa_linear::FittedLinearRegression;
use linfa_logistic::{FittedLogisticRegression, MultiFittedLogisticRegression};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::client::{Client, ClientSpec};
use crate::data::{check_row, Split};
use crate::error::{Error, Result};
use crate::fhe::{LeveledParameters, LeveledPlan};
use crate::program::{Decoder, LinearLayer, OutputKind, Prediction, Program, Step};
use crate::quant::{quantize_symmetric, InputQuantizer, Quantization, QuantizedRow};
use crate::server::{Server, ServerModel};

/// A float linear model on scaled features: `z = W x_scaled + b`, `W` is `n_outputs × n_features`.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatLinearModel {
    pub weights: Array2<f64>,
    pub bias: Vec<f64>,
    pub kind: OutputKind,
}

/// Fitted linfa models that are linear in their (scaled) inputs.
pub trait LinearModel {
    /// The model's weights, with classes named by `classes` (the split's labels, by index).
    fn float_model(&self, classes: &[i64]) -> Result<FloatLinearModel>;
}

impl LinearModel for FittedLogisticRegression<f64, usize> {
    fn float_model(&self, classes: &[i64]) -> Result<FloatLinearModel> {
        let labels = self.labels();
        let (neg, pos) = (labels.neg.class, labels.pos.class);
        if classes.len() != 2 || neg != 0 || pos != 1 {
            return Err(Error::Compile(format!(
                "binary logistic regression over classes {neg}/{pos} of {} labels",
                classes.len()
            )));
        }
        Ok(FloatLinearModel {
            weights: self.params().clone().insert_axis(ndarray::Axis(0)),
            bias: vec![self.intercept()],
            kind: OutputKind::Binary {
                classes: [classes[0], classes[1]],
            },
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
        })
    }
}

impl LinearModel for FittedLinearRegression<f64> {
    fn float_model(&self, _classes: &[i64]) -> Result<FloatLinearModel> {
        Ok(FloatLinearModel {
            weights: self.params().clone().insert_axis(ndarray::Axis(0)),
            bias: vec![self.intercept()],
            kind: OutputKind::Regression,
        })
    }
}

/// An integer model ready for encrypted inference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompiledModel {
    pub name: String,
    pub feature_names: Vec<String>,
    pub quantization: Quantization,
    pub quantizer: InputQuantizer,
    pub program: Program,
    pub decoder: Decoder,
    pub plan: LeveledPlan,
    /// Fingerprint of everything above: ciphertexts carry it, so a ciphertext made for another
    /// model or parameter set is refused.
    pub model_id: [u8; 16],
}

/// Compiles a fitted linear model: folds the split's scaler into per-feature input quantization
/// (calibrated on the raw training rows), quantizes the folded weights, and plans the encoding.
pub fn compile<M: LinearModel, T>(
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
    let quantizer = InputQuantizer::calibrate(&split.train_raw, quantization.input_bits);
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
        return Err(Error::Compile("the model has non-finite weights".into()));
    }
    let (weights, scale) = quantize_symmetric(&folded, quantization.weight_bits);
    let bias = folded_bias
        .iter()
        .map(|b| (b / scale).round() as i64)
        .collect();
    let layer = LinearLayer::new(d, n_out, weights, bias)?;
    let program = Program {
        n_inputs: d,
        input_bits: quantization.input_bits,
        steps: vec![Step::Linear(layer)],
    };
    let bounds = program.output_bounds();
    let layer = program.as_linear().expect("built as one linear step");
    let plan = LeveledPlan::for_linear(LeveledParameters::default(), layer, &bounds)?;
    let decoder = Decoder {
        kind: float.kind,
        scale,
    };
    let mut compiled = CompiledModel {
        name: split.name.clone(),
        feature_names: split.feature_names.clone(),
        quantization,
        quantizer,
        program,
        decoder,
        plan,
        model_id: [0; 16],
    };
    compiled.model_id = compiled.fingerprint()?;
    Ok(compiled)
}

impl CompiledModel {
    fn fingerprint(&self) -> Result<[u8; 16]> {
        let bytes = bincode::serialize(&(
            &self.feature_names,
            &self.quantizer,
            &self.program,
            &self.decoder,
            &self.plan,
        ))
        .map_err(|e| Error::Compile(e.to_string()))?;
        let mut id = [0u8; 16];
        id.copy_from_slice(&blake3::hash(&bytes).as_bytes()[..16]);
        Ok(id)
    }

    pub fn n_features(&self) -> usize {
        self.program.n_inputs
    }

    /// What a client needs to encrypt inputs and read results: no weights.
    pub fn client_spec(&self) -> ClientSpec {
        ClientSpec {
            model_id: self.model_id,
            name: self.name.clone(),
            feature_names: self.feature_names.clone(),
            quantizer: self.quantizer.clone(),
            decoder: self.decoder.clone(),
            plan: self.plan.clone(),
        }
    }

    /// What the server needs: the integer program and the plan; no key material.
    pub fn server_model(&self) -> ServerModel {
        ServerModel {
            model_id: self.model_id,
            program: self.program.clone(),
            plan: self.plan.clone(),
        }
    }

    /// A fresh client (with a new secret key) and the matching server.
    pub fn keygen(&self) -> Result<(Client, Server)> {
        let server = Server::new(self.server_model())?;
        Ok((Client::new(self.client_spec())?, server))
    }

    /// Quantizes a raw row (checked for length and finiteness).
    pub fn quantize(&self, row: &[f64]) -> Result<QuantizedRow> {
        check_row(row, self.n_features())?;
        Ok(self.quantizer.quantize(row))
    }

    /// The clear twin: integer scores of a raw row, exactly what decryption yields.
    pub fn simulate(&self, row: &[f64]) -> Result<Vec<i64>> {
        self.program.simulate(&self.quantize(row)?.values)
    }

    /// The quantized model's prediction for a raw row, without encryption.
    pub fn predict_simulated(&self, row: &[f64]) -> Result<Prediction> {
        self.decoder.decode(&self.simulate(row)?)
    }
}
