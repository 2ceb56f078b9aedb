//! Compilation: a fitted float linear model plus its training split becomes a `CompiledModel`
//! (input quantizer, integer program, decoder and encoding plan), which hands out the client's
//! and the server's parts.

use linfa_logistic::{FittedLogisticRegression, MultiFittedLogisticRegression};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::client::{Client, ClientSpec};
use crate::data::{check_row, Record, Schema, Split};
use crate::error::{Error, Result};
use crate::fhe::stats::normal_cdf;
use crate::fhe::{EncodingPlan, LabelHead, LeveledParameters, NoiseReport, OutputMode};
use crate::program::{
    Decoder, LinearLayer, LookupLayer, OutputKind, Prediction, Program, Step, TableFunction,
};
use crate::quant::{quantize_symmetric, InputQuantizer, Quantization, QuantizedRow};
use crate::server::{Server, ServerModel};
use crate::train::mlp::{half_circle_units, Mlp};
use crate::train::trees::{Node, TrainedForest};

pub use crate::compiler::compile;

/// A float linear model on scaled features: `z = W x_scaled + b`, `W` is `n_outputs × n_features`.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatLinearModel {
    /// Coefficients `W`, `n_outputs × n_features` (one row per logit, or one for a regression).
    pub weights: Array2<f64>,
    /// Intercepts `b`, one per output (`n_outputs`).
    pub bias: Vec<f64>,
    /// What the outputs mean: binary or multiclass logits, or a regression value.
    pub kind: OutputKind,
}

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

/// An integer model ready for encrypted inference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompiledModel {
    /// The model's name (the training table's), used in reports and by the service.
    pub name: String,
    /// The raw input columns a client's rows name, and their encoding into features.
    pub schema: Schema,
    /// `n_features` feature names after encoding.
    pub feature_names: Vec<String>,
    /// Bit widths of inputs and weights.
    pub quantization: Quantization,
    /// Maps raw feature rows (`n_features` values, raw units) to input levels; run by the
    /// client, so the scaler needs no separate shipping.
    pub quantizer: InputQuantizer,
    /// The integer program the server evaluates on ciphertexts.
    pub program: Program,
    /// Turns decrypted integer scores into a prediction, on the client.
    pub decoder: Decoder,
    /// How values are encoded in plaintexts (parameter set, scaling deltas, bits).
    pub plan: EncodingPlan,
    /// One line for reports: `30→1 linear, 8-bit inputs and weights`, `64-32-10 MLP ...`.
    pub description: String,
    /// What the server returns: scores (default), or only the sanitized label.
    pub output: OutputMode,
    /// Fingerprint of everything above: ciphertexts carry it, so a ciphertext made for another
    /// model or parameter set is refused.
    pub model_id: [u8; 16],
    /// The fitted float model this was compiled from, for [`Mode::Float`] (absent in a model
    /// read back from bytes; not part of the fingerprint or of equality).
    #[serde(skip)]
    pub float: FloatTwin,
    /// Keys made on the first [`Mode::Encrypted`] prediction, reused after.
    #[serde(skip)]
    keys: KeyCache,
}

/// The fitted float model behind a compiled one: what [`Mode::Float`] runs.
#[derive(Debug, Clone, Default)]
pub enum FloatTwin {
    /// Not known (a model read back from bytes).
    #[default]
    None,
    /// Logistic or linear regression on features scaled by `scaler`.
    Linear {
        /// The float coefficients, on scaled features.
        model: FloatLinearModel,
        /// The standard scaler fitted on the training rows.
        scaler: crate::data::Scaler,
    },
    /// The float network (unquantized inputs and weights).
    Mlp(Box<Mlp>),
    /// The forest fitted on raw features.
    Forest(Box<crate::train::trees::Forest>),
}

/// Equality of compiled models is equality of what runs: the float twin does not take part.
impl PartialEq for FloatTwin {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// A client and server made on first use, shared by clones of one compiled model.
#[derive(Clone, Default)]
struct KeyCache(std::sync::Arc<std::sync::OnceLock<(Client, Server)>>);

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "KeyCache(keys made)"
        } else {
            "KeyCache(empty)"
        })
    }
}

/// Keys are a cache, not part of a model's value.
impl PartialEq for KeyCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Which interpreter answers [`CompiledModel::predict`], named as Concrete ML names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The fitted float model (no quantization).
    Float,
    /// The exact integer twin of the encrypted program (Concrete ML's `fhe="disable"`).
    Clear,
    /// The integer twin with the bootstrapping noise tfhe's formulas predict (`"simulate"`);
    /// random, equal to `Clear` for leveled models.
    Noisy,
    /// Encrypted inference with keys made on first use (`"execute"`).
    Encrypted,
}

/// Tails tried when calibrating a linear model's input quantizer (fraction of training values
/// ignored at each end of a feature; 0 is min/max): see [`compile`].
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
        loss += match (decoder.decode(&program.simulate(&q)?)?, want) {
            (Prediction::Value(v), Prediction::Value(w)) => (v - w).powi(2),
            (got, want) => f64::from(u8::from(got.class_index() != want.class_index())),
        };
    }
    Ok(loss / reference.len().max(1) as f64)
}

impl CompiledModel {
    /// A model from its parts: plans the encoding (checking the program fits the parameter
    /// set) and fingerprints the whole. Its name and schema come from `split`.
    ///
    /// # Errors
    ///
    /// `Error::Compile` if the program is invalid ([`Program::validate`]) or does not fit the
    /// default parameter set, or the model cannot be serialized for its fingerprint.
    pub fn new<T>(
        split: &Split<T>,
        quantization: Quantization,
        quantizer: InputQuantizer,
        program: Program,
        decoder: Decoder,
        description: String,
    ) -> Result<Self> {
        program.validate()?;
        let plan =
            EncodingPlan::for_program(LeveledParameters::default(), &program, OutputMode::Scores)?;
        let mut compiled = CompiledModel {
            name: split.name.clone(),
            schema: split.schema.clone(),
            feature_names: split.feature_names.clone(),
            quantization,
            quantizer,
            program,
            decoder,
            plan,
            description,
            output: OutputMode::Scores,
            model_id: [0; 16],
            float: FloatTwin::None,
            keys: KeyCache::default(),
        };
        compiled.model_id = compiled.fingerprint()?;
        Ok(compiled)
    }

    /// The same model serving `output`: in label and top-k modes the plan leaves room for the
    /// argmax's differences and the label head is designed (refused for regressions, for top-k
    /// of a binary model, and for scores too wide to compare exactly). A new model id: the
    /// modes' ciphertexts do not mix.
    ///
    /// # Errors
    ///
    /// `Error::Compile` for a label mode on a regression, or if the plan or label head cannot
    /// be made for this program and mode (top-k of a binary model, scores too wide).
    pub fn with_output(mut self, output: OutputMode) -> Result<Self> {
        if output.labels().is_some() && self.decoder.kind == OutputKind::Regression {
            return Err(Error::Compile(format!(
                "{output} mode needs a classifier; a regression returns its value"
            )));
        }
        self.plan = EncodingPlan::for_program(self.plan.params.clone(), &self.program, output)?;
        LabelHead::for_output(&self.plan, &self.program, output)?;
        self.output = output;
        self.model_id = self.fingerprint()?;
        // Keys made for the model as it was would not match its new id.
        self.keys = KeyCache::default();
        Ok(self)
    }

    /// The label head of a model in label or top-k mode (its comparison circuit and costs);
    /// `None` in scores mode.
    ///
    /// # Errors
    ///
    /// `Error::Compile` if no label head fits this program and plan.
    pub fn label_head(&self) -> Result<Option<LabelHead>> {
        LabelHead::for_output(&self.plan, &self.program, self.output)
    }

    /// Bootstraps per inference: the program's and the label head's.
    ///
    /// # Errors
    ///
    /// As [`CompiledModel::label_head`].
    pub fn bootstraps(&self) -> Result<usize> {
        Ok(self.program.bootstraps() + self.label_head()?.map_or(0, |h| h.bootstraps()))
    }

    fn fingerprint(&self) -> Result<[u8; 16]> {
        let bytes = bincode::serialize(&(
            &self.schema,
            &self.feature_names,
            &self.quantizer,
            &self.program,
            &self.decoder,
            &self.plan,
            &self.output,
        ))
        .map_err(|e| Error::Compile(e.to_string()))?;
        let mut id = [0u8; 16];
        id.copy_from_slice(&blake3::hash(&bytes).as_bytes()[..16]);
        Ok(id)
    }

    /// Number of features a raw row must have (after encoding).
    pub fn n_features(&self) -> usize {
        self.program.n_inputs
    }

    /// What a client needs to encrypt inputs and read results: no weights.
    pub fn client_spec(&self) -> ClientSpec {
        ClientSpec {
            model_id: self.model_id,
            needs_evaluation_key: self.needs_evaluation_key(),
            output: self.output,
            name: self.name.clone(),
            schema: self.schema.clone(),
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
            output: self.output,
        }
    }

    /// A fresh client (with a new secret key) and the matching server; for models that
    /// bootstrap, the server gets the client's evaluation key.
    ///
    /// # Errors
    ///
    /// Fails if the client spec or server model is rejected (for instance `Error::Compile` or
    /// `Error::Wire` for an unsupported plan) or the evaluation key cannot be generated.
    pub fn keygen(&self) -> Result<(Client, Server)> {
        let client = Client::new(self.client_spec())?;
        let server = if self.needs_evaluation_key() {
            Server::with_evaluation_key(self.server_model(), &client.evaluation_key()?)?
        } else {
            Server::new(self.server_model())?
        };
        Ok((client, server))
    }

    /// One line: layer widths, and for MLPs the activation and weight quantization.
    pub fn architecture(&self) -> &str {
        &self.description
    }

    /// Whether the server needs the client's evaluation key (the program bootstraps, or the
    /// model returns labels).
    pub fn needs_evaluation_key(&self) -> bool {
        Server::needs_evaluation_key(&self.server_model())
    }

    /// What bootstrapping noise is expected to change in decrypted results (nothing for
    /// leveled models).
    ///
    /// # Errors
    ///
    /// `Error::Compile` (or `Error::Wire` for an unknown parameter set) if the plan's noise
    /// cannot be computed for the program.
    pub fn noise(&self) -> Result<NoiseReport> {
        self.plan.noise(&self.program)
    }

    /// Expected number of lookups, per lookup layer, whose encrypted output differs from the
    /// clear twin's for this row: for each neuron, the probability that the bootstrap's noise
    /// (tfhe's formulas) moves its position across a step of its function. Later layers are
    /// taken from their clean inputs (a first-order estimate). `row` is raw (`n_features`
    /// values); one expectation (a count of lookups) per lookup layer, in program order.
    ///
    /// # Errors
    ///
    /// `Error::Shape` or `Error::Input` for a row of the wrong length or with a non-finite
    /// value; as [`CompiledModel::noise`] if the noise cannot be computed.
    pub fn expected_lookup_mismatches(&self, row: &[f64]) -> Result<Vec<f64>> {
        let noise = self.noise()?;
        let x = self.quantize(row)?.values;
        let mut out = Vec::new();
        for (k, step) in self.program.steps.iter().enumerate() {
            let Step::Lookup(layer) = step else { continue };
            let sigma = noise.lookup_sigma_positions[out.len()];
            let z = self.program.simulate_until(&x, k)?;
            let reach = (6.0 * sigma).ceil() as i64 + 1;
            let scale = layer.scale_num as f64 / (1u64 << layer.scale_shift) as f64;
            let mut expected = 0.0;
            for (neuron, &v) in layer.neurons.iter().zip(&z) {
                let p_real = v as f64 * scale;
                let p0 = layer.position(v);
                let offset = p_real - (p_real + 0.5).floor();
                for &r in &neuron.reads {
                    let clean = layer.read(neuron, p0 + r);
                    for d in -reach..=reach {
                        if d != 0 && layer.read(neuron, p0 + r + d) != clean {
                            let lo = (d as f64 - 0.5 - offset) / sigma;
                            let hi = (d as f64 + 0.5 - offset) / sigma;
                            expected += normal_cdf(hi) - normal_cdf(lo);
                        }
                    }
                }
            }
            out.push(expected);
        }
        Ok(out)
    }

    /// The clear twin with the noise bootstrapping adds, drawn from tfhe's noise formulas
    /// (Concrete ML's "simulate" with errors): each lookup reads a position moved by Gaussian
    /// noise, each score gets its Gaussian noise and is rounded. Fast, for estimating how
    /// often encrypted results differ from `simulate`'s; equals `simulate` for leveled models.
    /// `row` is raw (`n_features` values); the result has `program.n_outputs()` integers.
    ///
    /// # Errors
    ///
    /// `Error::Shape` or `Error::Input` for a row of the wrong length or with a non-finite
    /// value; as [`CompiledModel::noise`] if the noise cannot be computed.
    pub fn simulate_noisy<R: rand::Rng>(&self, row: &[f64], rng: &mut R) -> Result<Vec<i64>> {
        let x = self.quantize(row)?.values;
        if self.program.bootstraps() == 0 {
            return self.program.simulate(&x);
        }
        let noise = self.noise()?;
        let mut gaussian = || {
            let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
            let u2: f64 = rng.gen();
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        };
        let mut values: Vec<i64> = x.iter().map(|&v| v as i64).collect();
        let mut lookup = 0;
        for step in &self.program.steps {
            values = match step {
                Step::Linear(l) => l.apply(&values),
                Step::Lookup(l) => {
                    let sigma = noise.lookup_sigma_positions[lookup];
                    lookup += 1;
                    let scale = l.scale_num as f64 / (1u64 << l.scale_shift) as f64;
                    let mut out = Vec::with_capacity(l.n_outputs());
                    for (f, &v) in l.neurons.iter().zip(&values) {
                        // One bootstrap: every read of the neuron sees the same noise.
                        let p = (v as f64 * scale + sigma * gaussian() + 0.5).floor() as i64;
                        out.extend(f.reads.iter().map(|&r| l.read(f, p + r)));
                    }
                    out
                }
            };
        }
        Ok(values
            .into_iter()
            .map(|v| v + (noise.score_sigma * gaussian()).round() as i64)
            .collect())
    }

    /// The feature row of a named record ([`Schema::encode`]): what `predict` and
    /// [`Client::encrypt_record`] use.
    ///
    /// # Errors
    ///
    /// `Error::Input` for a missing column, a bad number or an unknown category.
    pub fn encode(&self, record: &Record) -> Result<Vec<f64>> {
        self.schema.encode(record)
    }

    /// Quantizes a raw row (checked for length and finiteness).
    ///
    /// # Errors
    ///
    /// `Error::Shape` if `row` does not have `n_features` values, `Error::Input` if one is not
    /// finite.
    pub fn quantize(&self, row: &[f64]) -> Result<QuantizedRow> {
        check_row(row, self.n_features())?;
        Ok(self.quantizer.quantize(row))
    }

    /// The clear twin: integer scores of a raw row, exactly what decryption yields.
    ///
    /// # Errors
    ///
    /// `Error::Shape` if `row` does not have `n_features` values, `Error::Input` if one is not
    /// finite.
    pub fn simulate(&self, row: &[f64]) -> Result<Vec<i64>> {
        self.program.simulate(&self.quantize(row)?.values)
    }

    /// The quantized model's prediction for a raw row, without encryption.
    ///
    /// # Errors
    ///
    /// `Error::Shape` if `row` does not have `n_features` values, `Error::Input` if one is not
    /// finite.
    pub fn predict_simulated(&self, row: &[f64]) -> Result<Prediction> {
        self.decoder.decode(&self.simulate(row)?)
    }

    /// The prediction for one raw row (`n_features` values, in training order) by the
    /// interpreter `mode` names. In label and top-K output modes the integer modes return what
    /// the client decrypts: the best class, without probabilities. `Clear` equals `Encrypted`
    /// exactly for leveled models (every linear model) and up to the noise tfhe's formulas
    /// predict for bootstrapped ones.
    ///
    /// # Errors
    ///
    /// `Error::Shape` for a row of the wrong length, `Error::Input` for a non-finite value;
    /// `Error::Other` for `Float` on a model read back from bytes (no float twin); what the
    /// noise model returns for `Noisy`; what key generation or inference return for
    /// `Encrypted`.
    ///
    /// ```
    /// use fhe_ml::prelude::*;
    /// # fn main() -> fhe_ml::Result<()> {
    /// let text: String = (0..40).map(|i| format!("{i},{},{}\n", i % 7, 2 * i + i % 7))
    ///     .fold("a,b,target\n".into(), |s, l| s + &l);
    /// let data = fhe_ml::data::parse_csv_str(&text, "lin")?.split_regression(0.2, 42)?;
    /// let model = fhe_ml::compile(&LinearParams.fit(&data)?, &data, Options::bits(10))?;
    /// let row = data.train_raw.row(0).to_vec();                     // inside the calibrated range
    /// let float = model.predict(&row, Mode::Float)?.value().unwrap();    // least squares
    /// let clear = model.predict(&row, Mode::Clear)?;                     // its integer twin
    /// assert!((clear.value().unwrap() - float).abs() < 0.5, "{clear:?} vs {float}");
    /// assert_eq!(model.predict(&row, Mode::Encrypted)?, clear);         // leveled: exact
    /// # Ok(()) }
    /// ```
    pub fn predict(&self, row: &[f64], mode: Mode) -> Result<Prediction> {
        match mode {
            Mode::Float => self.predict_float(row),
            Mode::Clear => self.decode_output(&self.simulate(row)?),
            Mode::Noisy => self.decode_output(&self.simulate_noisy(row, &mut rand::thread_rng())?),
            Mode::Encrypted => {
                let (client, server) = self.keys()?;
                client.decrypt(&server.infer(&client.encrypt(row)?)?)
            }
        }
    }

    /// Predictions for `rows` (`n_rows × n_features`, raw values), one per row; `Encrypted`
    /// runs the rows on all cores.
    ///
    /// # Errors
    ///
    /// As [`CompiledModel::predict`], for the first row that fails.
    pub fn predict_batch(&self, rows: &Array2<f64>, mode: Mode) -> Result<Vec<Prediction>> {
        use rayon::prelude::*;
        let rows: Vec<Vec<f64>> = rows.rows().into_iter().map(|r| r.to_vec()).collect();
        match mode {
            Mode::Encrypted => {
                let (client, server) = self.keys()?;
                let inputs = rows
                    .par_iter()
                    .map(|r| client.encrypt(r))
                    .collect::<Result<Vec<_>>>()?;
                server
                    .infer_batch(&inputs)
                    .into_par_iter()
                    .map(|out| client.decrypt(&out?))
                    .collect()
            }
            _ => rows.iter().map(|r| self.predict(r, mode)).collect(),
        }
    }

    /// Scores decoded as the client would see them in this model's output mode.
    fn decode_output(&self, scores: &[i64]) -> Result<Prediction> {
        match self.output.labels() {
            None => self.decoder.decode(scores),
            Some(k) => self
                .decoder
                .decode_label(crate::fhe::label::top_labels(scores, k)[0]),
        }
    }

    /// The client and server of `Mode::Encrypted`, made once.
    fn keys(&self) -> Result<&(Client, Server)> {
        if let Some(keys) = self.keys.0.get() {
            return Ok(keys);
        }
        let made = self.keygen()?;
        let _ = self.keys.0.set(made);
        self.keys
            .0
            .get()
            .ok_or_else(|| Error::Other("keys were not kept".into()))
    }

    /// The float twin's prediction.
    fn predict_float(&self, row: &[f64]) -> Result<Prediction> {
        check_row(row, self.n_features())?;
        match &self.float {
            FloatTwin::None => Err(Error::Other(
                "no float twin: this model was read back from bytes, not compiled from a fitted model"
                    .into(),
            )),
            FloatTwin::Linear { model, scaler } => {
                let x = scaler.transform_row(ndarray::ArrayView1::from(row));
                let z: Vec<f64> = (0..model.weights.nrows())
                    .map(|o| {
                        model.weights.row(o).iter().zip(&x).map(|(w, v)| w * v).sum::<f64>()
                            + model.bias[o]
                    })
                    .collect();
                self.decoder.decode_real(&z)
            }
            FloatTwin::Mlp(mlp) => {
                let logits = mlp.predict_logits(&[row.to_vec()])?;
                self.decoder.decode_real(&logits[0])
            }
            FloatTwin::Forest(forest) => {
                let votes = forest.votes(row);
                let index = forest.predict(row);
                let total = votes.iter().sum::<usize>().max(1) as f64;
                let mut prediction = self.decoder.decode_label(index)?;
                if let Prediction::Class { probabilities, .. } = &mut prediction {
                    *probabilities = votes.iter().map(|&v| v as f64 / total).collect();
                }
                Ok(prediction)
            }
        }
    }
}

/// Sub-position bits of the first lookup's input: the first layer's integer weights are in
/// 1/64 of a bootstrap position, so rounding them costs far less than the bootstrap's noise.
pub const FIRST_LOOKUP_SHIFT: u32 = 6;
/// Sub-position bits of the scale of later lookups (their weights are few-bit integers).
pub const LATER_LOOKUP_SHIFT: u32 = 8;

/// A ReLU clipped to `levels` steps for a neuron with `per_unit` positions per activation unit:
/// thresholds where `round(y * levels)` steps up, and the window that puts every threshold in
/// the first half of the circle and leaves the most room below (see `program::TableFunction`).
fn clipped_relu(per_unit: f64, levels: u32, half: i64) -> TableFunction {
    let thresholds: Vec<i64> = (1..=levels)
        .map(|m| ((m as f64 - 0.5) / levels as f64 * per_unit).ceil() as i64)
        .collect();
    let top = *thresholds.last().expect("levels >= 1");
    TableFunction::staircase(top - (half - 1), &thresholds)
}

/// Compiles a trained MLP into the integer program the encrypted interpreter runs:
/// linear (in sub-position units, per-neuron scaled so each neuron's training range fills
/// `range_fill` of its lookup circle), lookup, and for each further layer its few-bit integer
/// weights (exactly the training's fake quantization), lookup, ..., linear scores.
///
/// # Errors
///
/// `Error::Compile` if the MLP's layers and activation ranges disagree, or the program is
/// invalid or does not fit the parameter set.
pub fn compile_mlp(mlp: &Mlp, split: &Split<usize>) -> Result<CompiledModel> {
    let cfg = &mlp.config;
    let levels = cfg.levels();
    let params = LeveledParameters::default();
    let half = params.polynomial_size as i64;
    let positions = params.positions();
    let fill = cfg.range_fill;
    let n_hidden = cfg.hidden.len();
    if mlp.layers.len() != n_hidden + 1 || mlp.ranges.len() != n_hidden {
        return Err(Error::Compile(
            "the MLP's layers and ranges disagree".into(),
        ));
    }
    let per_unit =
        |range: (f64, f64)| (half - 1) as f64 * fill / half_circle_units(range, levels as f64);
    let mut steps = Vec::new();

    // First layer: y_o = sum_i W[i][o] * q_i / max_in + b_o, placed at per_unit(o) positions
    // per unit and 2^FIRST_LOOKUP_SHIFT integers per position.
    let first = &mlp.layers[0];
    let max_in = mlp.quantizer.max_level() as f64;
    let sub = (1u64 << FIRST_LOOKUP_SHIFT) as f64;
    let p: Vec<f64> = mlp.ranges[0].iter().map(|&r| per_unit(r)).collect();
    let mut weights = Vec::with_capacity(first.n_inputs * first.n_outputs);
    for (o, &po) in p.iter().enumerate() {
        for i in 0..first.n_inputs {
            let w = first.weights[i * first.n_outputs + o] as f64;
            weights.push((w * po * sub / max_in).round() as i64);
        }
    }
    let bias = first
        .bias
        .iter()
        .zip(&p)
        .map(|(&b, &po)| (b as f64 * po * sub).round() as i64)
        .collect();
    steps.push(Step::Linear(LinearLayer::new(
        first.n_inputs,
        first.n_outputs,
        weights,
        bias,
    )?));
    steps.push(Step::Lookup(LookupLayer {
        positions,
        scale_num: 1,
        scale_shift: FIRST_LOOKUP_SHIFT,
        mirror: levels as i64,
        neurons: p.iter().map(|&po| clipped_relu(po, levels, half)).collect(),
    }));

    // Later layers: integer weights w = round(W / s) as in training; y = (s/levels) * z + b.
    let mut decoder_scale = 1.0;
    for l in 1..=n_hidden {
        let layer = &mlp.layers[l];
        let transposed: Vec<f64> = (0..layer.n_outputs)
            .flat_map(|o| (0..layer.n_inputs).map(move |i| (i, o)))
            .map(|(i, o)| layer.weights[i * layer.n_outputs + o] as f64)
            .collect();
        let (weights, s) = quantize_symmetric(&transposed, cfg.weight_bits);
        let unit = s / levels as f64;
        let bias = layer
            .bias
            .iter()
            .map(|&b| (b as f64 / unit).round() as i64)
            .collect();
        steps.push(Step::Linear(LinearLayer::new(
            layer.n_inputs,
            layer.n_outputs,
            weights,
            bias,
        )?));
        if l < n_hidden {
            // One scale for the whole layer: the narrowest neuron's positions per unit.
            let p = mlp.ranges[l]
                .iter()
                .map(|&r| per_unit(r))
                .fold(f64::INFINITY, f64::min);
            let num = ((p * unit) * (1u64 << LATER_LOOKUP_SHIFT) as f64)
                .round()
                .max(1.0);
            let p_eff = num / (1u64 << LATER_LOOKUP_SHIFT) as f64 / unit;
            steps.push(Step::Lookup(LookupLayer {
                positions,
                scale_num: num as i64,
                scale_shift: LATER_LOOKUP_SHIFT,
                mirror: levels as i64,
                neurons: (0..layer.n_outputs)
                    .map(|_| clipped_relu(p_eff, levels, half))
                    .collect(),
            }));
        } else {
            decoder_scale = unit;
        }
    }
    let program = Program {
        n_inputs: first.n_inputs,
        input_bits: cfg.input_bits,
        steps,
    };
    let decoder = Decoder {
        kind: OutputKind::Multiclass {
            classes: split.classes.clone(),
        },
        scale: decoder_scale,
        offset: 0.0,
    };
    let quantization = Quantization {
        input_bits: cfg.input_bits,
        weight_bits: cfg.weight_bits,
    };
    let widths: Vec<String> = std::iter::once(first.n_inputs)
        .chain(mlp.layers.iter().map(|l| l.n_outputs))
        .map(|w| w.to_string())
        .collect();
    let description = format!(
        "{} MLP: ReLU clipped to {levels} levels by bootstrapping, {}-bit inputs, {}-bit weights after the first layer",
        widths.join("-"),
        cfg.input_bits,
        cfg.weight_bits
    );
    CompiledModel::new(
        split,
        quantization,
        mlp.quantizer.clone(),
        program,
        decoder,
        description,
    )
}

/// A tree condition after quantization: constant, or one read of the comparison lookup.
#[derive(Debug, Clone, Copy)]
enum Condition {
    Constant(bool),
    /// Index of the comparison output `[x_f > t]`.
    Bit(usize),
}

/// Compiles the quantized forest of a training run (`train::trees`) to a program of two
/// bootstrapped lookups:
/// 1. comparisons: one bootstrap per feature the forest splits on; its table is a sign at the
///    half circle and each threshold `t` is one read, `reads` apart by whole levels, so
///    `[x > t]` for every threshold of the feature costs one blind rotation. Features sit
///    `2N / 2^(b+1)` positions apart (128 at 4 bits: a noise margin of 64 positions, 13 sigma,
///    tfhe's published failure rate);
/// 2. leaves: one bootstrap per split with a leaf child (per class beyond two): its input is
///    `u = 2 s + c`, where `s` counts the conditions met on the path to the split and `c` is
///    the split's own comparison, so the table returns the leaf's vote exactly when the path
///    is taken (`s` = depth); 16 boxes of 128 positions, depth up to 7;
/// 3. the votes summed per class (constant votes fold into the biases).
///
/// # Errors
///
/// `Error::Compile` if the program is invalid or does not fit the parameter set.
pub fn compile_forest(trained: &TrainedForest, split: &Split<usize>) -> Result<CompiledModel> {
    use std::collections::BTreeMap;

    let cfg = &trained.config;
    let forest = &trained.quantized;
    let bits = cfg.input_bits;
    let max_level = (1i64 << bits) - 1;
    let params = LeveledParameters::default();
    let positions = params.positions();
    let spacing = positions as i64 >> (bits + 1);
    let d = split.n_features();
    let n_classes = forest.n_classes;

    // Conditions of every split: right when x > t, t = ceil(threshold) - 1 on integer levels.
    let mut thresholds: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
    let raw_t = |threshold: f64| threshold.ceil() as i64 - 1;
    for tree in &forest.trees {
        for node in &tree.nodes {
            if let Node::Split {
                feature, threshold, ..
            } = *node
            {
                let t = raw_t(threshold);
                if (0..max_level).contains(&t) {
                    thresholds.entry(feature).or_default().push(t);
                }
            }
        }
    }
    for ts in thresholds.values_mut() {
        ts.sort_unstable();
        ts.dedup();
    }
    let mut bit_index = BTreeMap::new();
    for (&f, ts) in &thresholds {
        for &t in ts {
            let next = bit_index.len();
            bit_index.insert((f, t), next);
        }
    }
    let condition = |feature: usize, threshold: f64| {
        let t = raw_t(threshold);
        if t < 0 {
            Condition::Constant(true)
        } else if t >= max_level {
            Condition::Constant(false)
        } else {
            Condition::Bit(bit_index[&(feature, t)])
        }
    };
    // A forest that never splits on a varying feature (every feature constant, say) still
    // compiles: its votes are constants, the program one leveled layer (below).

    // Step 0: z = 2x + 1 for every feature used; step 1: its comparisons.
    let used: Vec<usize> = thresholds.keys().copied().collect();
    let mut w0 = vec![0i64; used.len() * d];
    for (row, &f) in used.iter().enumerate() {
        w0[row * d + f] = 2;
    }
    let comparisons = LookupLayer {
        positions,
        scale_num: spacing / 2,
        scale_shift: 0,
        mirror: 1,
        neurons: used
            .iter()
            .map(|f| TableFunction {
                window_start: 0,
                steps: Vec::new(),
                reads: thresholds[f]
                    .iter()
                    .map(|&t| (max_level - t) * spacing)
                    .collect(),
            })
            .collect(),
    };

    // Step 2: one row per (split with a leaf child, class), z = 2u + 1 = 4s + 2c + 1.
    let n_bits = bit_index.len();
    let voted: Vec<usize> = if n_classes == 2 {
        vec![1]
    } else {
        (0..n_classes).collect()
    };
    let mut rows: Vec<(Vec<i64>, i64)> = Vec::new();
    let mut tables: Vec<TableFunction> = Vec::new();
    let mut row_class: Vec<usize> = Vec::new();
    let mut constant_votes = vec![0i64; n_classes];
    let box_size = positions as i64 / 32;
    for tree in &forest.trees {
        // (node, path of (condition, went right))
        let mut stack: Vec<(usize, Vec<(Condition, bool)>)> = vec![(0, Vec::new())];
        while let Some((i, path)) = stack.pop() {
            let (feature, threshold, left, right) = match tree.nodes[i] {
                Node::Leaf { class } => {
                    // Only a tree that is a single leaf reaches here.
                    constant_votes[class] += 1;
                    continue;
                }
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => (feature, threshold, left, right),
            };
            let own = condition(feature, threshold);
            let leaf_class = |child: usize| match tree.nodes[child] {
                Node::Leaf { class } => Some(class),
                Node::Split { .. } => None,
            };
            let (left_leaf, right_leaf) = (leaf_class(left), leaf_class(right));
            if left_leaf.is_some() || right_leaf.is_some() {
                let depth = path.len() as i64;
                let mut weights = vec![0i64; n_bits];
                let mut bias = 1i64;
                let mut variable = false;
                for &(cond, went_right) in &path {
                    match (cond, went_right) {
                        (Condition::Constant(v), want) => bias += 4 * i64::from(v == want),
                        (Condition::Bit(b), true) => {
                            weights[b] += 4;
                            variable = true;
                        }
                        (Condition::Bit(b), false) => {
                            weights[b] -= 4;
                            bias += 4;
                            variable = true;
                        }
                    }
                }
                match own {
                    Condition::Constant(v) => bias += 2 * i64::from(v),
                    Condition::Bit(b) => {
                        weights[b] += 2;
                        variable = true;
                    }
                }
                if variable {
                    for &k in &voted {
                        let vote = |leaf: Option<usize>| i64::from(leaf == Some(k));
                        let (v0, v1) = (vote(left_leaf), vote(right_leaf));
                        let at = |u: i64| u * box_size;
                        let steps: Vec<(i64, i64)> = [
                            (at(2 * depth), v0),
                            (at(2 * depth + 1), v1 - v0),
                            (at(2 * depth + 2), -v1),
                        ]
                        .into_iter()
                        .filter(|s| s.1 != 0)
                        .collect();
                        rows.push((weights.clone(), bias));
                        tables.push(TableFunction {
                            window_start: 0,
                            steps,
                            reads: vec![0],
                        });
                        row_class.push(k);
                    }
                } else {
                    // Every condition on the way is constant (and met: unreachable subtrees are
                    // never visited), so the vote is known.
                    let goes_right = matches!(own, Condition::Constant(true));
                    if let Some(class) = if goes_right { right_leaf } else { left_leaf } {
                        constant_votes[class] += 1;
                    }
                }
            }
            for (child, went_right) in [(left, false), (right, true)] {
                let reachable = !matches!(own, Condition::Constant(v) if v != went_right);
                if reachable && leaf_class(child).is_none() {
                    let mut p = path.clone();
                    p.push((own, went_right));
                    stack.push((child, p));
                }
            }
        }
    }
    if rows.is_empty() {
        // The votes do not depend on the input: one leveled layer of constant scores.
        let mut votes = constant_votes.clone();
        if n_classes == 2 {
            votes[0] = forest.trees.len() as i64 - constant_votes[1];
        }
        let program = Program {
            n_inputs: d,
            input_bits: bits,
            steps: vec![Step::Linear(LinearLayer::new(
                d,
                n_classes,
                vec![0; d * n_classes],
                votes,
            )?)],
        };
        let decoder = Decoder {
            kind: OutputKind::Multiclass {
                classes: split.classes.clone(),
            },
            scale: 1.0,
            offset: 0.0,
        };
        return CompiledModel::new(
            split,
            Quantization {
                input_bits: bits,
                weight_bits: bits,
            },
            trained.quantizer.clone(),
            program,
            decoder,
            format!(
                "{} of constant votes: no split depends on a varying feature",
                if forest.trees.len() == 1 {
                    "decision tree".to_string()
                } else {
                    format!("{}-tree forest", forest.trees.len())
                }
            ),
        );
    }
    let leaves = LookupLayer {
        positions,
        scale_num: box_size / 2,
        scale_shift: 0,
        mirror: 0,
        neurons: tables,
    };

    // Step 4: votes per class. Binary: score 1 = its votes, score 0 = trees - score 1.
    let g = rows.len();
    let trees = forest.trees.len() as i64;
    let mut w4 = vec![0i64; n_classes * g];
    let mut b4 = constant_votes.clone();
    for (j, &k) in row_class.iter().enumerate() {
        w4[k * g + j] = 1;
    }
    if n_classes == 2 {
        w4[..g].fill(-1);
        b4[0] = trees - constant_votes[1];
    }
    let steps = vec![
        Step::Linear(LinearLayer::new(d, used.len(), w0, vec![1; used.len()])?),
        Step::Lookup(comparisons),
        Step::Linear(LinearLayer::new(
            n_bits,
            g,
            rows.iter().flat_map(|r| r.0.iter().copied()).collect(),
            rows.iter().map(|r| r.1).collect(),
        )?),
        Step::Lookup(leaves),
        Step::Linear(LinearLayer::new(g, n_classes, w4, b4)?),
    ];
    let program = Program {
        n_inputs: d,
        input_bits: bits,
        steps,
    };
    let decoder = Decoder {
        kind: OutputKind::Multiclass {
            classes: split.classes.clone(),
        },
        scale: 1.0,
        offset: 0.0,
    };
    let kind = if forest.trees.len() == 1 {
        format!("depth-{} decision tree", cfg.depth)
    } else {
        format!("{}-tree depth-{} forest", forest.trees.len(), cfg.depth)
    };
    let description = format!(
        "{kind}: {} splits, {} comparisons on {} features ({}-bit) in {} bootstraps, {} leaf lookups",
        forest.splits(),
        n_bits,
        used.len(),
        bits,
        used.len(),
        g
    );
    let quantization = Quantization {
        input_bits: bits,
        weight_bits: bits,
    };
    CompiledModel::new(
        split,
        quantization,
        trained.quantizer.clone(),
        program,
        decoder,
        description,
    )
}
