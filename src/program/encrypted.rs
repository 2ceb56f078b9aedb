//! The encrypted interpreter ("execute"): the program's steps on ciphertexts, as the server
//! runs them. The first linear layer reads the client's packed GLWE input, later linear layers
//! combine LWE ciphertexts, lookups bootstrap with the client's evaluation key, and a label
//! head compares, ranks and re-randomizes ([`crate::fhe::label`]). Every value carries the
//! delta the encoding plan gives it, so decryption yields the clear interpreter's integers.
//! It holds no secret key material.

use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fhe::bootstrap::{Bootstrapper, KeyId, TestPolynomial};
use crate::fhe::kernels::{
    axpy, expand_mask, extended_mask, pack_bits, round_to_bits, unpack_bits,
};
use crate::fhe::label::{LabelTables, LABEL_OUTPUT_BITS};
use crate::fhe::{EncodingPlan, LookupEncoding};
use crate::program::{LookupLayer, Step};
use crate::protocol::{EncryptedInput, EncryptedOutput, ServerModel};

/// Ciphertexts after each step, with their delta (see [`EncryptedProgram::run_traced`]).
pub type Trace = Vec<(u64, Vec<Vec<u64>>)>;

/// Wall-clock time of one program step of one inference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepTiming {
    /// `linear 64→32`, `lookup ×32 (bootstrap)`, `label ×30 (bootstrap)`, ...
    pub step: String,
    /// Wall-clock time of the step, in ms.
    pub ms: f64,
    /// Programmable bootstraps the step ran (0 for a linear step).
    pub bootstraps: usize,
}

/// A checked program ready to run on ciphertexts: for programs that bootstrap, the client's
/// expanded evaluation key and every lookup's test polynomials (built once, reused per query).
pub struct EncryptedProgram {
    model: ServerModel,
    lookups: Option<Lookups>,
}

struct Lookups {
    bootstrapper: Arc<Bootstrapper>,
    /// Per lookup layer: encodings, output offset, and one test polynomial per neuron.
    layers: Vec<(LookupEncoding, u64, Vec<TestPolynomial>)>,
    /// The label head's test polynomials.
    label: Option<LabelTables>,
}

impl std::fmt::Debug for EncryptedProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedProgram")
            .field("model", &self.model)
            .field("evaluation_key", &self.key_id())
            .finish()
    }
}

/// `mirror * output_delta / 2`: the constant around the negacyclic rotation.
fn output_offset(layer: &LookupLayer, output_delta: u64) -> u64 {
    (layer.mirror as u64).wrapping_mul(output_delta / 2)
}

/// The test polynomial of neuron `j` of `layer` for `polynomial_size` N: coefficient `q` holds
/// `T[q] * output_delta - mirror * output_delta / 2`; the bootstrap's negacyclic rotation then
/// gives `mirror/2 - T` past the half circle, and adding `mirror * output_delta / 2` afterwards
/// yields exactly the program's `read` (see `program::TableFunction`).
fn test_polynomial(
    layer: &LookupLayer,
    neuron: usize,
    output_delta: u64,
    polynomial_size: usize,
) -> TestPolynomial {
    let offset = output_offset(layer, output_delta);
    let f = &layer.neurons[neuron];
    let coefficients: Vec<u64> = (0..polynomial_size)
        .map(|q| {
            (layer.table_entry(f, q as i64) as u64)
                .wrapping_mul(output_delta)
                .wrapping_sub(offset)
        })
        .collect();
    TestPolynomial::windowed(
        &coefficients,
        f.window_start,
        f.reads.iter().map(|&r| r as usize).collect(),
    )
}

impl EncryptedProgram {
    /// Checks `model` (a valid program; its plan and label head the ones this build derives
    /// from it) and prepares it; `key` is the client's expanded evaluation key, needed when the
    /// program bootstraps ([`crate::program::Program::needs_evaluation_key`]) and ignored
    /// otherwise.
    ///
    /// # Errors
    /// `Error::Compile` when the program is invalid, its plan or label head is not the one this
    /// build derives, or it bootstraps and `key` is `None`; `Error::ModelMismatch` for a key of
    /// another parameter set; `Error::Wire` for an unknown parameter set or one without
    /// bootstrap parameters.
    pub fn new(model: ServerModel, key: Option<Arc<Bootstrapper>>) -> Result<Self> {
        Self::check(&model)?;
        let (program, plan) = (&model.program, &model.plan);
        if !program.needs_evaluation_key() {
            return Ok(Self {
                model,
                lookups: None,
            });
        }
        let Some(bootstrapper) = key else {
            return Err(Error::Compile(
                "this model bootstraps (or returns labels): build the server with the client's evaluation key (Server::with_evaluation_key)".into(),
            ));
        };
        if bootstrapper.params != plan.params {
            return Err(Error::ModelMismatch(format!(
                "the evaluation key is for {}, the model uses {}",
                bootstrapper.params.name, plan.params.name
            )));
        }
        let encodings = if program.as_linear().is_some() {
            Vec::new()
        } else {
            EncodingPlan::lookup_encodings(&plan.params, program, plan.output_delta_log2)?
        };
        let n = plan.params.polynomial_size;
        let layers = program
            .lookup_layers()
            .zip(encodings)
            .map(|(layer, enc)| {
                let tables = (0..layer.neurons.len())
                    .map(|j| test_polynomial(layer, j, enc.output_delta, n))
                    .collect();
                (enc, output_offset(layer, enc.output_delta), tables)
            })
            .collect();
        let label = program.head().map(|head| head.tables());
        Ok(Self {
            model,
            lookups: Some(Lookups {
                bootstrapper,
                layers,
                label,
            }),
        })
    }

    /// Checks a server model without preparing it: a valid program, and the plan and label
    /// head this build derives from it (what a service checks of every model it loads).
    ///
    /// # Errors
    /// `Error::Compile` when the program is invalid or its plan or label head is not the one
    /// this build derives; `Error::Wire` for an unknown parameter set.
    pub fn check(model: &ServerModel) -> Result<()> {
        let (program, plan) = (&model.program, &model.plan);
        program.validate()?;
        plan.params.check_features(program.n_inputs)?;
        if EncodingPlan::for_program(plan.params.clone(), program)? != *plan {
            return Err(Error::Compile(
                "the model's encoding plan does not match its program".into(),
            ));
        }
        if let Some(head) = program.head() {
            if !plan.label_head(program, head.top)?.same_design(head) {
                return Err(Error::Compile(
                    "the model's label head does not match its plan".into(),
                ));
            }
        }
        Ok(())
    }

    /// The model this program was prepared from.
    pub fn model(&self) -> &ServerModel {
        &self.model
    }

    /// The id of the evaluation key it runs under (`None` for leveled programs).
    pub fn key_id(&self) -> Option<KeyId> {
        self.lookups.as_ref().map(|l| l.bootstrapper.id)
    }

    /// Runs the program on one encrypted row and sizes the output for the wire (modulus
    /// switch to the plan's output bits); with `profile`, times each step.
    ///
    /// # Errors
    /// `Error::ModelMismatch` for an input made for another model, or under an evaluation key
    /// other than this program's; `Error::Wire` when the input's feature count, bits or packing
    /// are not the model's.
    pub fn run(
        &self,
        input: &EncryptedInput,
        profile: bool,
    ) -> Result<(EncryptedOutput, Vec<StepTiming>)> {
        self.run_with(input, profile, None)
    }

    /// [`EncryptedProgram::run`], also returning the ciphertexts before every step but the
    /// first (full 64-bit LWE, mask then body, masks in the order `Client::decrypt_phases`
    /// reads) with each step's delta: tests compare every step with
    /// `Program::simulate_until`. Only the client can read them.
    ///
    /// # Errors
    /// As [`EncryptedProgram::run`].
    pub fn run_traced(&self, input: &EncryptedInput) -> Result<(EncryptedOutput, Trace)> {
        let mut trace = Vec::new();
        let (output, _) = self.run_with(input, false, Some(&mut trace))?;
        Ok((output, trace))
    }

    fn run_with(
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
            mode: self.model.program.output(),
            bits,
            n_outputs: values.len() as u32,
            lwe_dimension: (lwe_size - 1) as u32,
            coefficients: pack_bits(&out, bits),
        };
        Ok((output, timings))
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
        if let Some(id) = self.key_id() {
            if input.key_id != Some(id) {
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

    /// The interpreter proper: output ciphertexts at full 64-bit precision (reversed-key
    /// order, as clients decrypt), the bits they travel at, and step timings.
    ///
    /// # Errors
    /// As [`EncryptedProgram::run`].
    pub fn run_unrounded(
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
        let lookups = || {
            self.lookups
                .as_ref()
                .ok_or_else(|| Error::Compile("this model needs an evaluation key".into()))
        };
        // Values as LWE ciphertexts (mask then body), at the current delta. Masks pair with the
        // reversed key until the first bootstrap (see `kernels`), with the natural one after.
        let mut values: Vec<Vec<u64>> = Vec::new();
        let mut delta = 1u64 << plan.delta_log2;
        let mut natural_order = false;
        let mut bits = plan.output_bits;
        let mut lookup_index = 0;
        for (k, step) in self.model.program.steps.iter().enumerate() {
            if let (Some(trace), true) = (trace.as_deref_mut(), k > 0) {
                let mut copy = values.clone();
                if natural_order {
                    for ct in &mut copy {
                        ct[..n].reverse();
                    }
                }
                trace.push((delta, copy));
            }
            if matches!(step, Step::Lookup(_) | Step::Label(_)) && !natural_order {
                // <a, rev(s)> = <rev(a), s>: bootstraps use the key in natural order.
                for ct in &mut values {
                    ct[..n].reverse();
                }
                natural_order = true;
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
                    let lookups = lookups()?;
                    let (enc, offset, tables) = &lookups.layers[lookup_index];
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
                Step::Label(head) => {
                    let lookups = lookups()?;
                    let tables = lookups.label.as_ref().ok_or_else(|| {
                        Error::Compile("the label head's tables were not built".into())
                    })?;
                    values = head.evaluate(tables, &lookups.bootstrapper, &values)?;
                    bits = LABEL_OUTPUT_BITS;
                    lap(
                        format!(
                            "{} ×{} (bootstrap)",
                            self.model.program.output(),
                            head.bootstraps()
                        ),
                        head.bootstraps(),
                        &mut timings,
                    );
                }
            }
        }
        if natural_order {
            // Back to the reversed-key convention every client decrypts with.
            for ct in &mut values {
                ct[..n].reverse();
            }
        }
        Ok((values, bits, timings))
    }
}
