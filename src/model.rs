//! The compiled model: input quantizer, integer program, decoder and encoding plan under one
//! fingerprint, with its float twin; it hands out the client's and the server's parts and
//! predicts in every [`Mode`]. The compilers that make one are in [`crate::compiler`].

use ndarray::Array2;
use serde::Serialize;

use crate::client::Client;
use crate::data::{check_row, Record, Schema, Split};
use crate::error::{Error, Result};
use crate::fhe::{EncodingPlan, LabelHead, LeveledParameters, NoiseReport, OutputMode};
use crate::program::{noisy, Decoder, Link, OutputKind, Prediction, Program, Step};
use crate::protocol::{ClientSpec, ServerModel};
use crate::quant::{InputQuantizer, Quantization, QuantizedRow};
use crate::server::Server;
use crate::train::mlp::Mlp;

/// An integer model ready for encrypted inference. Its parts are read through accessors and
/// changed only by methods that fingerprint it again ([`CompiledModel::with_output`]), so its
/// [`CompiledModel::model_id`] always names what it runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompiledModel {
    name: String,
    schema: Schema,
    feature_names: Vec<String>,
    quantization: Quantization,
    quantizer: InputQuantizer,
    program: Program,
    decoder: Decoder,
    plan: EncodingPlan,
    description: String,
    model_id: [u8; 16],
    /// Not part of the fingerprint or of equality.
    #[serde(skip)]
    float: FloatTwin,
    /// Keys made on the first [`Mode::Encrypted`] prediction, reused after.
    #[serde(skip)]
    keys: KeyCache,
}

/// A float linear model on scaled features: `z = W x_scaled + b`, `W` is `n_outputs × n_features`.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatLinearModel {
    /// Coefficients `W`, `n_outputs × n_features` (one row per logit, or one for a regression).
    pub weights: Array2<f64>,
    /// Intercepts `b`, one per output (`n_outputs`).
    pub bias: Vec<f64>,
    /// What the outputs mean: binary or multiclass logits, or a regression value.
    pub kind: OutputKind,
    /// A regression's link ([`Link::Log`] for Poisson, Gamma and Tweedie regression): the
    /// client applies its inverse after decryption. [`Link::Identity`] for classifiers.
    pub link: Link,
}

/// The fitted float model behind a compiled one: what [`Mode::Float`] runs.
#[derive(Debug, Clone, Default)]
pub enum FloatTwin {
    /// Not known (a model made by a lower-level `compile_*` function).
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
    /// A model imported from ONNX ([`crate::import`]), as its framework computes it.
    Imported(Box<crate::import::OnnxModel>),
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
        if program.head().is_some() {
            return Err(Error::Compile(
                "compile the scores program; with_output adds the label head".into(),
            ));
        }
        let plan = EncodingPlan::for_program(LeveledParameters::default(), &program)?;
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
        let mut program = self.program.without_head();
        let plan = EncodingPlan::for_output(self.plan.params.clone(), &program, output)?;
        if let Some(top) = output.labels() {
            let head = plan.label_head(&program, top)?;
            program.steps.push(Step::Label(head));
        }
        program.validate()?;
        self.program = program;
        self.plan = plan;
        self.model_id = self.fingerprint()?;
        // Keys made for the model as it was would not match its new id.
        self.keys = KeyCache::default();
        Ok(self)
    }

    /// Attaches the fitted float model (not part of the fingerprint).
    pub(crate) fn with_float(mut self, float: FloatTwin) -> Self {
        self.float = float;
        self
    }

    /// The label head ending the program in label or top-K mode (its comparison circuit and
    /// costs); `None` in scores mode.
    pub fn label_head(&self) -> Option<&LabelHead> {
        self.program.head()
    }

    /// Programmable bootstraps per inference, the label head's included
    /// ([`Program::bootstraps`]).
    pub fn bootstraps(&self) -> usize {
        self.program.bootstraps()
    }

    /// The model's name (the training table's), used in reports and by the service.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The raw input columns a client's rows name, and their encoding into features.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The `n_features` feature names after encoding.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// Bit widths of inputs and weights.
    pub fn quantization(&self) -> Quantization {
        self.quantization
    }

    /// Maps raw feature rows (`n_features` values, raw units) to input levels; run by the
    /// client, so the scaler needs no separate shipping.
    pub fn quantizer(&self) -> &InputQuantizer {
        &self.quantizer
    }

    /// The integer program the server evaluates on ciphertexts.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// Turns decrypted integers into a prediction, on the client.
    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// How values are encoded in plaintexts (parameter set, scaling deltas, bits).
    pub fn plan(&self) -> &EncodingPlan {
        &self.plan
    }

    /// What the server returns: scores (default), the sanitized label, or the top K labels.
    pub fn output(&self) -> OutputMode {
        self.program.output()
    }

    /// Fingerprint (BLAKE3, 16 bytes) of everything the model runs: ciphertexts carry it, so
    /// one made for another model or parameter set is refused.
    pub fn model_id(&self) -> [u8; 16] {
        self.model_id
    }

    /// The fitted float model this was compiled from, for [`Mode::Float`].
    pub fn float_twin(&self) -> &FloatTwin {
        &self.float
    }

    fn fingerprint(&self) -> Result<[u8; 16]> {
        let bytes = bincode::serialize(&(
            &self.schema,
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

    /// Number of features a raw row must have (after encoding).
    pub fn n_features(&self) -> usize {
        self.program.n_inputs
    }

    /// What a client needs to encrypt inputs and read results: no weights.
    pub fn client_spec(&self) -> ClientSpec {
        ClientSpec {
            model_id: self.model_id,
            needs_evaluation_key: self.needs_evaluation_key(),
            output: self.output(),
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
        self.program.needs_evaluation_key()
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
        noisy::expected_lookup_mismatches(&self.program, &self.plan, &self.quantize(row)?.values)
    }

    /// The clear twin with the noise bootstrapping adds, drawn from tfhe's noise formulas
    /// (Concrete ML's "simulate" with errors): each lookup reads a position moved by Gaussian
    /// noise, each score gets its Gaussian noise and is rounded. Fast, for estimating how
    /// often encrypted results differ from `simulate`'s; equals `simulate` for leveled models.
    /// `row` is raw (`n_features` values); the result is shaped as [`CompiledModel::simulate`]'s
    /// (scores, or labels in label and top-K modes).
    ///
    /// # Errors
    ///
    /// `Error::Shape` or `Error::Input` for a row of the wrong length or with a non-finite
    /// value; as [`CompiledModel::noise`] if the noise cannot be computed.
    pub fn simulate_noisy<R: rand::Rng>(&self, row: &[f64], rng: &mut R) -> Result<Vec<i64>> {
        noisy::simulate_noisy(&self.program, &self.plan, &self.quantize(row)?.values, rng)
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

    /// The clear twin: the integers decryption yields for a raw row: the scores, or in label
    /// and top-K modes the class indices, best first.
    ///
    /// # Errors
    ///
    /// `Error::Shape` if `row` does not have `n_features` values, `Error::Input` if one is not
    /// finite.
    pub fn simulate(&self, row: &[f64]) -> Result<Vec<i64>> {
        self.program.simulate(&self.quantize(row)?.values)
    }

    /// The clear twin's scores (the program before any label head): what decryption yields in
    /// scores mode, `program().n_outputs()` integers.
    ///
    /// # Errors
    ///
    /// As [`CompiledModel::simulate`].
    pub fn simulate_scores(&self, row: &[f64]) -> Result<Vec<i64>> {
        self.program.simulate_scores(&self.quantize(row)?.values)
    }

    /// The quantized model's prediction for a raw row from its clear scores (with
    /// probabilities, in every output mode), without encryption.
    ///
    /// # Errors
    ///
    /// `Error::Shape` if `row` does not have `n_features` values, `Error::Input` if one is not
    /// finite.
    pub fn predict_simulated(&self, row: &[f64]) -> Result<Prediction> {
        self.decoder.decode(&self.simulate_scores(row)?)
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
            Mode::Clear => self.decode(&self.simulate(row)?),
            Mode::Noisy => self.decode(&self.simulate_noisy(row, &mut rand::thread_rng())?),
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

    /// The program's outputs ([`CompiledModel::simulate`]'s, or `simulate_noisy`'s) as the
    /// client reads them in this model's output mode: scores decoded with probabilities, or in
    /// label and top-K modes the best class without them.
    ///
    /// # Errors
    ///
    /// `Error::Shape` for outputs of the wrong count; `Error::Input` for a label index out
    /// of range.
    pub fn decode(&self, outputs: &[i64]) -> Result<Prediction> {
        match self.program.head() {
            None => self.decoder.decode(outputs),
            Some(_) => {
                let best = outputs.first().ok_or_else(|| Error::Shape {
                    what: "labels".into(),
                    expected: 1,
                    found: 0,
                })?;
                self.decoder.decode_label(*best as usize)
            }
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
            FloatTwin::Imported(model) => match model.predict(row)? {
                Prediction::Class {
                    label,
                    probabilities,
                    ..
                } => {
                    // The model's class order to the data's (the decoder's).
                    let mut prediction = self.decoder.decode_label(
                        self.decoder
                            .kind
                            .classes()
                            .iter()
                            .position(|&c| c == label)
                            .ok_or_else(|| Error::Other(format!("class {label} unknown")))?,
                    )?;
                    if let Prediction::Class { probabilities: p, .. } = &mut prediction {
                        let model_classes = model.classes().unwrap_or(&[]);
                        *p = self
                            .decoder
                            .kind
                            .classes()
                            .iter()
                            .map(|c| {
                                model_classes
                                    .iter()
                                    .position(|m| m == c)
                                    .and_then(|i| probabilities.get(i).copied())
                                    .unwrap_or(0.0)
                            })
                            .collect();
                    }
                    Ok(prediction)
                }
                value => Ok(value),
            },
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
