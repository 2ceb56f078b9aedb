//! The server: owns the integer model and computes on ciphertexts: leveled linear layers,
//! table lookups by programmable bootstrapping with the client's evaluation key, and in label
//! mode the sanitized label (`fhe::label`). It holds no secret key material, and no constructor
//! or method takes one; wire readers refuse one.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use std::sync::Arc;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::fhe::bootstrap::{output_offset, Bootstrapper, KeyId, TestPolynomial};
use crate::fhe::kernels::{
    axpy, expand_mask, extended_mask, pack_bits, round_to_bits, unpack_bits,
};
use crate::fhe::label::{LabelTables, LABEL_OUTPUT_BITS};
use crate::fhe::wire::{self, Kind};
use crate::fhe::{EncodingPlan, EvaluationKey, LabelHead, LookupEncoding, OutputMode};
use crate::program::{Program, Step};

/// What the server holds: the integer program and its encoding plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerModel {
    /// The model's 16-byte id: inputs made for another model are refused.
    pub model_id: [u8; 16],
    /// The integer program: linear layers and table lookups.
    pub program: Program,
    /// Where values sit in the torus; checked against the program when a server is built.
    pub plan: EncodingPlan,
    /// Scores, or only the (sanitized) label.
    pub output: OutputMode,
}

/// One encrypted row: the GLWE mask's seed and the first `n_inputs` body coefficients, rounded
/// to `body_bits` bits and bit-packed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedInput {
    pub(crate) model_id: [u8; 16],
    /// The evaluation key of the encrypting client (none for leveled models): models that
    /// bootstrap run only under that key.
    pub(crate) key_id: Option<KeyId>,
    pub(crate) seed: u128,
    pub(crate) body_bits: u32,
    pub(crate) n_inputs: u32,
    pub(crate) bodies: Vec<u8>,
}

/// Encrypted scores: `n_outputs` LWE ciphertexts of dimension `lwe_dimension` (mask then body),
/// modulus-switched to `bits` bits per coefficient and bit-packed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedOutput {
    pub(crate) model_id: [u8; 16],
    /// Scores, or label bits (`±2^62` each, bit 0 first).
    pub(crate) mode: OutputMode,
    pub(crate) bits: u32,
    pub(crate) n_outputs: u32,
    pub(crate) lwe_dimension: u32,
    pub(crate) coefficients: Vec<u8>,
}

macro_rules! wire_type {
    ($ty:ty, $kind:expr) => {
        impl $ty {
            /// Serializes into a versioned, size-limited, integrity-checked blob.
            ///
            /// # Errors
            /// `Error::Wire` when the value does not serialize within its kind's limit.
            pub fn to_bytes(&self) -> Result<Vec<u8>> {
                wire::seal($kind, self)
            }

            /// Reads a blob written by `to_bytes`, refusing anything else.
            ///
            /// # Errors
            /// `Error::Wire` for malformed, truncated or corrupted bytes or another format
            /// version; `Error::WrongKind` for a blob of another kind (a secret key
            /// included); `Error::TooLarge` for a payload over the kind's limit.
            pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
                wire::open($kind, bytes)
            }
        }
    };
}
wire_type!(EncryptedInput, Kind::EncryptedInput);

impl EncryptedInput {
    /// The encrypted body coefficients, bit-packed: what travels besides the 16-byte seed.
    pub fn body_bytes(&self) -> &[u8] {
        &self.bodies
    }

    /// The seed of the GLWE mask (public: anyone holding the ciphertext expands it).
    pub fn mask_seed(&self) -> u128 {
        self.seed
    }

    /// Bits of each body coefficient.
    pub fn body_bits(&self) -> u32 {
        self.body_bits
    }
}
wire_type!(EncryptedOutput, Kind::EncryptedOutput);
wire_type!(ServerModel, Kind::ServerModel);

/// The evaluating side of encrypted inference.
pub struct Server {
    model: ServerModel,
    bootstrap: Option<Lookups>,
    /// Label mode: the comparison circuit and its test polynomials.
    label: Option<(LabelHead, LabelTables)>,
}

/// What a bootstrapped program needs besides the model: the client's expanded evaluation key
/// and every neuron's test polynomial with its encodings (built once, reused per query).
struct Lookups {
    bootstrapper: Arc<Bootstrapper>,
    /// Per lookup layer: encodings, output offset, and one test polynomial per neuron.
    layers: Vec<(LookupEncoding, u64, Vec<TestPolynomial>)>,
}

/// Ciphertexts after each step, with their delta (see `Server::infer_traced`).
pub type Trace = Vec<(u64, Vec<Vec<u64>>)>;

/// Wall-clock time of one program step of one inference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepTiming {
    /// `linear 64→32`, `lookup ×32 (bootstrap)`, ...
    pub step: String,
    /// Wall-clock time of the step, in ms.
    pub ms: f64,
    /// Programmable bootstraps the step ran (0 for a linear step).
    pub bootstraps: usize,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("model", &self.model)
            .field("bootstraps", &self.bootstrap.is_some())
            .finish()
    }
}

impl Server {
    /// Whether a model needs its client's evaluation key: it bootstraps, or returns labels.
    pub fn needs_evaluation_key(model: &ServerModel) -> bool {
        model.program.as_linear().is_none() || model.output.labels().is_some()
    }

    /// A server for a leveled model (one linear step) returning scores, which needs no
    /// evaluation key.
    ///
    /// # Errors
    /// `Error::Compile` when the model bootstraps or returns labels (use
    /// [`Server::with_evaluation_key`]), its program is invalid, or its plan is not the one
    /// this build derives from it; `Error::Wire` for an unknown parameter set.
    pub fn new(model: ServerModel) -> Result<Self> {
        Self::check(&model)?;
        if Self::needs_evaluation_key(&model) {
            return Err(Error::Compile(
                "this model bootstraps (or returns labels): build the server with the client's evaluation key (Server::with_evaluation_key)".into(),
            ));
        }
        Ok(Self {
            model,
            bootstrap: None,
            label: None,
        })
    }

    /// A server for any model, with the evaluation key a client generated
    /// (`Client::evaluation_key`); leveled models returning scores ignore the key.
    ///
    /// # Errors
    /// `Error::Wire` for a key of another parameter set or with the wrong dimensions; then
    /// as [`Server::with_expanded_key`].
    pub fn with_evaluation_key(model: ServerModel, key: &EvaluationKey) -> Result<Self> {
        if !Self::needs_evaluation_key(&model) {
            return Self::new(model);
        }
        let expanded = key.expand(&model.plan.params)?;
        Self::with_expanded_key(model, Arc::new(expanded))
    }

    /// A server for a model that bootstraps, with a client's evaluation key already expanded
    /// (one expanded key can serve every model of a client).
    ///
    /// # Errors
    /// `Error::ModelMismatch` for a key of another parameter set; `Error::Compile` when the
    /// program is invalid, its plan is not the one this build derives from it, or its lookups
    /// or label head do not fit the parameter set; `Error::Wire` for an unknown parameter set
    /// or one without bootstrap parameters.
    pub fn with_expanded_key(model: ServerModel, bootstrapper: Arc<Bootstrapper>) -> Result<Self> {
        Self::check(&model)?;
        if !Self::needs_evaluation_key(&model) {
            return Self::new(model);
        }
        if bootstrapper.params != model.plan.params {
            return Err(Error::ModelMismatch(format!(
                "the evaluation key is for {}, the model uses {}",
                bootstrapper.params.name, model.plan.params.name
            )));
        }
        let encodings = if model.program.as_linear().is_some() {
            Vec::new()
        } else {
            EncodingPlan::lookup_encodings(
                &model.plan.params,
                &model.program,
                model.plan.output_delta_log2,
            )?
        };
        let label = LabelHead::for_output(&model.plan, &model.program, model.output)?.map(|head| {
            let tables = head.tables();
            (head, tables)
        });
        let lookups = model.program.steps.iter().filter_map(|s| match s {
            Step::Lookup(l) => Some(l),
            Step::Linear(_) => None,
        });
        let layers = lookups
            .zip(encodings)
            .map(|(layer, enc)| {
                let tables = (0..layer.neurons.len())
                    .map(|j| bootstrapper.test_polynomial(layer, j, enc.output_delta))
                    .collect();
                (enc, output_offset(layer, enc.output_delta), tables)
            })
            .collect();
        Ok(Self {
            model,
            bootstrap: Some(Lookups {
                bootstrapper,
                layers,
            }),
            label,
        })
    }

    /// The program must be valid and its plan the one this build derives from it.
    fn check(model: &ServerModel) -> Result<()> {
        model.program.validate()?;
        model.plan.params.check_features(model.program.n_inputs)?;
        let expected =
            EncodingPlan::for_program(model.plan.params.clone(), &model.program, model.output)?;
        if expected != model.plan {
            return Err(Error::Compile(
                "the model's encoding plan does not match its program".into(),
            ));
        }
        Ok(())
    }

    /// The model this server evaluates.
    pub fn model(&self) -> &ServerModel {
        &self.model
    }

    /// Bootstraps one inference costs (the program's and, in label mode, the label head's).
    pub fn bootstraps_per_inference(&self) -> usize {
        self.model.program.bootstraps()
            + self.label.as_ref().map_or(0, |(head, _)| head.bootstraps())
    }

    /// The label head, in label mode.
    pub fn label_head(&self) -> Option<&LabelHead> {
        self.label.as_ref().map(|(head, _)| head)
    }

    /// Runs the model on one encrypted row.
    ///
    /// # Errors
    /// `Error::ModelMismatch` for an input made for another model, or by a client whose
    /// evaluation key this server does not hold; `Error::Wire` when the input's feature
    /// count, bits or packing are not the model's.
    pub fn infer(&self, input: &EncryptedInput) -> Result<EncryptedOutput> {
        Ok(self.run(input, false, None)?.0)
    }

    /// `infer`, also returning the ciphertexts after every step but the last (full 64-bit
    /// LWE, mask then body, masks in the order `Client::decrypt_phases` reads) with each
    /// step's delta: lets tests compare every step with `Program::simulate_until`. Only the
    /// client can read them.
    ///
    /// # Errors
    /// As [`Server::infer`].
    #[doc(hidden)]
    pub fn infer_traced(&self, input: &EncryptedInput) -> Result<(EncryptedOutput, Trace)> {
        let mut trace = Vec::new();
        let (output, _) = self.run(input, false, Some(&mut trace))?;
        Ok((output, trace))
    }

    /// `infer`, timing each program step.
    ///
    /// # Errors
    /// As [`Server::infer`].
    pub fn infer_profiled(
        &self,
        input: &EncryptedInput,
    ) -> Result<(EncryptedOutput, Vec<StepTiming>)> {
        self.run(input, true, None)
    }

    /// Checks an input against the model and unpacks its body coefficients to 64 bits.
    fn unpack_input(&self, input: &EncryptedInput) -> Result<Vec<u64>> {
        let plan = &self.model.plan;
        let d = self.model.program.n_inputs;
        if input.model_id != self.model.model_id {
            return Err(Error::ModelMismatch(
                "the ciphertext was made for another model or parameter set".into(),
            ));
        }
        if let Some(lookups) = &self.bootstrap {
            if input.key_id != Some(lookups.bootstrapper.id) {
                return Err(Error::ModelMismatch(
                    "the ciphertext comes from a client whose evaluation key this server does not hold".into(),
                ));
            }
        }
        if input.body_bits != plan.input_body_bits || input.n_inputs as usize != d {
            return Err(Error::Wire(format!(
                "ciphertext holds {} inputs at {} bits, the model takes {d} at {} bits",
                input.n_inputs, input.body_bits, plan.input_body_bits
            )));
        }
        let shift = 64 - plan.input_body_bits;
        Ok(unpack_bits(&input.bodies, input.body_bits, d)?
            .into_iter()
            .map(|b| if shift == 64 { 0 } else { b << shift })
            .collect())
    }

    /// The interpreter: the first linear layer reads the packed GLWE input, lookups bootstrap,
    /// later linear layers combine LWE ciphertexts; every value carries the delta the plan
    /// gives it, so decryption yields `simulate`'s integers.
    fn run(
        &self,
        input: &EncryptedInput,
        profile: bool,
        trace: Option<&mut Trace>,
    ) -> Result<(EncryptedOutput, Vec<StepTiming>)> {
        let (values, bits, timings) = self.run_unrounded(input, profile, trace)?;
        let lwe_size = self.model.plan.params.lwe_dimension() + 1;
        let mut out = Vec::with_capacity(values.len() * lwe_size);
        for ct in &values {
            out.extend(ct.iter().map(|&c| round_to_bits(c, bits)));
        }
        let output = EncryptedOutput {
            model_id: self.model.model_id,
            mode: self.model.output,
            bits,
            n_outputs: values.len() as u32,
            lwe_dimension: (lwe_size - 1) as u32,
            coefficients: pack_bits(&out, bits),
        };
        Ok((output, timings))
    }

    /// The output ciphertexts at full 64-bit precision, before the modulus switch that sizes
    /// them for the wire (reversed-key order, as clients decrypt): what an attacker holding the
    /// key sees at best. For the model-privacy tests.
    ///
    /// # Errors
    /// As [`Server::infer`].
    #[doc(hidden)]
    pub fn infer_unrounded(&self, input: &EncryptedInput) -> Result<Vec<Vec<u64>>> {
        Ok(self.run_unrounded(input, false, None)?.0)
    }

    /// The interpreter proper: output ciphertexts, the bits they travel at, and step timings.
    fn run_unrounded(
        &self,
        input: &EncryptedInput,
        profile: bool,
        mut trace: Option<&mut Trace>,
    ) -> Result<(Vec<Vec<u64>>, u32, Vec<StepTiming>)> {
        let plan = &self.model.plan;
        let bodies = self.unpack_input(input)?;
        let n = plan.params.polynomial_size;
        let lwe_size = plan.params.lwe_dimension() + 1;
        let mut timings = Vec::new();
        let mut clock = Instant::now();
        let mut lap = |step: String, bootstraps: usize, timings: &mut Vec<StepTiming>| {
            if profile {
                timings.push(StepTiming {
                    step,
                    ms: clock.elapsed().as_secs_f64() * 1e3,
                    bootstraps,
                });
                clock = Instant::now();
            }
        };
        // Values as LWE ciphertexts (mask then body), at the current delta.
        let mut values: Vec<Vec<u64>> = Vec::new();
        let mut delta = 1u64 << plan.delta_log2;
        let mut lookup_index = 0;
        for (k, step) in self.model.program.steps.iter().enumerate() {
            if let (Some(trace), true) = (trace.as_deref_mut(), k > 0) {
                let mut copy = values.clone();
                if lookup_index > 0 {
                    for ct in &mut copy {
                        ct[..n].reverse();
                    }
                }
                trace.push((delta, copy));
            }
            match step {
                Step::Linear(layer) if k == 0 => {
                    let f = extended_mask(&expand_mask(input.seed, n), layer.n_inputs);
                    values = (0..layer.n_outputs)
                        .map(|o| {
                            let mut ct = vec![0u64; lwe_size];
                            let (mask, body) = ct.split_at_mut(n);
                            let mut b = (layer.bias[o] as u64).wrapping_mul(delta);
                            for (i, &w) in layer.row(o).iter().enumerate() {
                                if w != 0 {
                                    axpy(mask, w as u64, &f[i..i + n]);
                                    b = b.wrapping_add((w as u64).wrapping_mul(bodies[i]));
                                }
                            }
                            body[0] = b;
                            ct
                        })
                        .collect();
                    lap(
                        format!("linear {}→{}", layer.n_inputs, layer.n_outputs),
                        0,
                        &mut timings,
                    );
                }
                Step::Linear(layer) => {
                    values = (0..layer.n_outputs)
                        .map(|o| {
                            let mut ct = vec![0u64; lwe_size];
                            for (&w, v) in layer.row(o).iter().zip(&values) {
                                if w != 0 {
                                    axpy(&mut ct, w as u64, v);
                                }
                            }
                            let body = &mut ct[lwe_size - 1];
                            *body = body.wrapping_add((layer.bias[o] as u64).wrapping_mul(delta));
                            ct
                        })
                        .collect();
                    lap(
                        format!("linear {}→{}", layer.n_inputs, layer.n_outputs),
                        0,
                        &mut timings,
                    );
                }
                Step::Lookup(layer) => {
                    let lookups = self.bootstrap.as_ref().ok_or_else(|| {
                        Error::Compile("this model needs an evaluation key".into())
                    })?;
                    let (enc, offset, tables) = &lookups.layers[lookup_index];
                    if lookup_index == 0 {
                        // The packed input's LWE masks pair with the reversed key (see
                        // `kernels`); the evaluation key and bootstrap outputs use the key in
                        // natural order: <a, rev(s)> = <rev(a), s>.
                        for ct in &mut values {
                            ct[..n].reverse();
                        }
                    }
                    lookup_index += 1;
                    debug_assert_eq!(enc.input_delta, delta);
                    let outputs: Vec<Vec<Vec<u64>>> = std::mem::take(&mut values)
                        .into_par_iter()
                        .zip(tables.par_iter())
                        .map(|(ct, table)| lookups.bootstrapper.lookup(ct, table, *offset))
                        .collect::<Result<_>>()?;
                    values = outputs.into_iter().flatten().collect();
                    delta = enc.output_delta;
                    lap(
                        format!("lookup ×{} (bootstrap)", layer.neurons.len()),
                        layer.neurons.len(),
                        &mut timings,
                    );
                }
            }
        }
        let mut bits = plan.output_bits;
        if let Some((head, tables)) = &self.label {
            let lookups = self
                .bootstrap
                .as_ref()
                .ok_or_else(|| Error::Compile("label mode needs an evaluation key".into()))?;
            if lookup_index == 0 {
                // Leveled outputs pair with the reversed key; bootstraps use the natural one.
                for ct in &mut values {
                    ct[..n].reverse();
                }
            }
            values = head.evaluate(tables, &lookups.bootstrapper, &values)?;
            bits = LABEL_OUTPUT_BITS;
            lap(
                format!("{} ×{} (bootstrap)", self.model.output, head.bootstraps()),
                head.bootstraps(),
                &mut timings,
            );
        }
        if lookup_index > 0 || self.label.is_some() {
            // Back to the reversed-key convention every client decrypts with.
            for ct in &mut values {
                ct[..n].reverse();
            }
        }
        Ok((values, bits, timings))
    }

    /// Runs the model on many rows, in parallel on all cores; one result per row.
    ///
    /// # Errors
    /// Each row's result fails as [`Server::infer`] does; one bad row does not stop the others.
    pub fn infer_batch(&self, inputs: &[EncryptedInput]) -> Vec<Result<EncryptedOutput>> {
        inputs.par_iter().map(|ct| self.infer(ct)).collect()
    }

    /// Wire form of `infer`: an input blob in, an output blob out.
    ///
    /// # Errors
    /// As [`EncryptedInput::from_bytes`] for the blob, then as [`Server::infer`];
    /// `Error::Wire` if the output does not serialize within its 64 MiB limit.
    pub fn infer_bytes(&self, input: &[u8]) -> Result<Vec<u8>> {
        self.infer(&EncryptedInput::from_bytes(input)?)?.to_bytes()
    }
}
