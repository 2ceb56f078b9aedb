//! The client: owns the secret key. Quantizes and encrypts raw rows; decrypts, dequantizes and
//! post-processes results (scores, or a label in label mode). Nothing here is needed, or
//! accepted, by the server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use tfhe::core_crypto::commons::generators::DeterministicSeeder;
use tfhe::core_crypto::commons::math::random::{RandomGenerator, Seed};
use tfhe::core_crypto::prelude::{
    allocate_and_generate_new_binary_glwe_secret_key, new_seeder, DefaultRandomGenerator,
    GlweDimension, GlweSecretKeyOwned, PolynomialSize, SecretRandomGenerator, Seeder, TUniform,
};

use crate::data::{check_row, Record};
use crate::error::{Error, Result};
use crate::fhe::bootstrap::KeyId;
use crate::fhe::kernels::{
    dot, expand_mask, extended_mask, pack_bits, reverse_key, round_to_bits, unpack_bits,
};
use crate::fhe::label::{decode_top_labels, label_bits, LABEL_OUTPUT_BITS};
use crate::fhe::wire::{self, Kind};
use crate::fhe::{EvaluationKey, OutputMode};
use crate::program::Prediction;
use crate::protocol::{ClientSpec, EncryptedInput, EncryptedOutput};

/// The secret key: tfhe's binary GLWE secret key (k = 1), held in reversed coefficient order
/// for the kernels. Not `Serialize`: it leaves a `Client` only through `export_secret_key`,
/// as a blob every server-side reader refuses. (Models that bootstrap also use a small LWE key,
/// only while generating the evaluation key.)
struct SecretKey {
    reversed: Vec<u64>,
}

/// Where a client's randomness comes from: tfhe's seeder (the OS), or a fixed seed expanded by
/// tfhe's CSPRNG, for reproducible tests and benchmarks.
enum Seeds {
    System,
    Fixed(Box<Mutex<DeterministicSeeder<DefaultRandomGenerator>>>),
}

impl Seeds {
    fn next(&self) -> Seed {
        match self {
            Seeds::System => new_seeder().seed(),
            Seeds::Fixed(seeder) => seeder
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .seed(),
        }
    }
}

impl SecretKey {
    fn generate(polynomial_size: usize, seeds: &Seeds) -> Self {
        let mut generator = SecretRandomGenerator::<DefaultRandomGenerator>::new(seeds.next());
        let key: GlweSecretKeyOwned<u64> = allocate_and_generate_new_binary_glwe_secret_key(
            GlweDimension(1),
            PolynomialSize(polynomial_size),
            &mut generator,
        );
        Self {
            reversed: reverse_key(key.as_ref()),
        }
    }
}

/// The data owner's side of encrypted inference.
pub struct Client {
    spec: ClientSpec,
    key: SecretKey,
    clipped: AtomicU64,
    seeds: Seeds,
    /// The evaluation key, generated once on first need (models that bootstrap).
    evaluation_key: OnceLock<(EvaluationKey, KeyId)>,
    /// Seed of the evaluation key for seeded clients (drawn up front so the key does not
    /// depend on how many rows were encrypted first).
    evaluation_seed: Option<Seed>,
}

impl Client {
    /// A client with a fresh secret key for the given model.
    ///
    /// # Errors
    /// As [`ClientSpec::validate`]: `Error::Wire` or `Error::Compile` for an invalid spec.
    pub fn new(spec: ClientSpec) -> Result<Self> {
        Self::with_seeds(spec, Seeds::System)
    }

    /// A client whose key, encryptions and evaluation key all derive from `seed` through
    /// tfhe's CSPRNG: runs repeat exactly, for tests and benchmarks. Its key is only as secret
    /// as the seed: never use it for real data.
    ///
    /// # Errors
    /// As [`ClientSpec::validate`]: `Error::Wire` or `Error::Compile` for an invalid spec.
    pub fn new_seeded(spec: ClientSpec, seed: u64) -> Result<Self> {
        let seeder = DeterministicSeeder::<DefaultRandomGenerator>::new(Seed(seed as u128));
        Self::with_seeds(spec, Seeds::Fixed(Box::new(Mutex::new(seeder))))
    }

    fn with_seeds(spec: ClientSpec, seeds: Seeds) -> Result<Self> {
        spec.validate()?;
        let key = SecretKey::generate(spec.plan.params.polynomial_size, &seeds);
        let evaluation_seed = match &seeds {
            Seeds::System => None,
            Seeds::Fixed(_) => Some(seeds.next()),
        };
        Ok(Self {
            evaluation_seed,
            spec,
            key,
            clipped: AtomicU64::new(0),
            seeds,
            evaluation_key: OnceLock::new(),
        })
    }

    /// The model's public part this client encrypts for.
    pub fn spec(&self) -> &ClientSpec {
        &self.spec
    }

    /// Feature values clipped into the calibrated range so far (never wrapped).
    pub fn clipped_count(&self) -> u64 {
        self.clipped.load(Ordering::Relaxed)
    }

    /// Saves the secret key for this client's own later use (kind `SecretKey`: every
    /// server-side reader refuses it). Keep it as secret as the data it decrypts.
    ///
    /// # Errors
    /// `Error::Wire` if the key does not serialize (not expected: it is N 64-bit words).
    pub fn export_secret_key(&self) -> Result<Vec<u8>> {
        wire::seal(Kind::SecretKey, &(self.spec.model_id, &self.key.reversed))
    }

    /// A client from a spec and a key saved by `export_secret_key`.
    ///
    /// # Errors
    /// As [`ClientSpec::validate`] for the spec; for the key blob, `Error::Wire` when it is
    /// malformed, corrupted, or not a binary key of the model's polynomial size,
    /// `Error::WrongKind` when it is not a secret key, `Error::TooLarge` for an oversized
    /// payload, and `Error::ModelMismatch` when it was made for another model.
    pub fn with_secret_key(spec: ClientSpec, key_blob: &[u8]) -> Result<Self> {
        spec.validate()?;
        let (model_id, reversed): ([u8; 16], Vec<u64>) = wire::open(Kind::SecretKey, key_blob)?;
        if model_id != spec.model_id {
            return Err(Error::ModelMismatch(
                "the secret key was made for another model".into(),
            ));
        }
        if reversed.len() != spec.plan.params.polynomial_size || reversed.iter().any(|&b| b > 1) {
            return Err(Error::Wire(
                "not a binary key of the model's dimension".into(),
            ));
        }
        Ok(Self {
            spec,
            key: SecretKey { reversed },
            clipped: AtomicU64::new(0),
            seeds: Seeds::System,
            evaluation_key: OnceLock::new(),
            evaluation_seed: None,
        })
    }

    /// The evaluation key a server needs for models that bootstrap (tfhe's compressed server
    /// key, about 29 MiB for the 2_2 set): generated from this client's secret key once (under
    /// a second) and the same on every call; safe to send. Inputs carry its identifier, so a
    /// server holding another client's key refuses them.
    ///
    /// # Errors
    /// `Error::Wire` when the parameter set has no bootstrap parameters in this build, or the
    /// key does not serialize for its id.
    pub fn evaluation_key(&self) -> Result<EvaluationKey> {
        Ok(self.evaluation_key_and_id()?.0.clone())
    }

    fn evaluation_key_and_id(&self) -> Result<&(EvaluationKey, KeyId)> {
        if let Some(pair) = self.evaluation_key.get() {
            return Ok(pair);
        }
        let natural = reverse_key(&self.key.reversed);
        let key = EvaluationKey::generate(&self.spec.plan.params, natural, self.evaluation_seed)?;
        let id = key.id()?;
        // Two threads may race here; the first key wins and both return it.
        let _ = self.evaluation_key.set((key, id));
        Ok(self.evaluation_key.get().expect("just set"))
    }

    /// The identifier inputs carry: the evaluation key's for models that bootstrap (the key is
    /// generated on first use), none for leveled models.
    fn key_id(&self) -> Result<Option<KeyId>> {
        if self.spec.needs_evaluation_key {
            Ok(Some(self.evaluation_key_and_id()?.1))
        } else {
            Ok(None)
        }
    }

    /// Quantizes (clipping out-of-range values) and encrypts one raw row of `n_features`
    /// values.
    ///
    /// # Errors
    /// `Error::Shape` when the row's length is not the model's feature count; `Error::Input`
    /// for a non-finite value; for models that bootstrap, the errors of
    /// [`Client::evaluation_key`] (generated on first use).
    pub fn encrypt(&self, row: &[f64]) -> Result<EncryptedInput> {
        check_row(row, self.spec.quantizer.n_features())?;
        let q = self.spec.quantizer.quantize(row);
        self.clipped.fetch_add(q.clipped as u64, Ordering::Relaxed);
        self.encrypt_quantized(&q.values)
    }

    /// Encodes a named row with the model's schema (columns matched by name, in any order;
    /// extra names ignored; categories one-hot encoded), then quantizes and encrypts it.
    ///
    /// # Errors
    /// `Error::Input` naming a missing column, a bad number or an unknown category; then as
    /// [`Client::encrypt`].
    pub fn encrypt_record(&self, record: &Record) -> Result<EncryptedInput> {
        self.encrypt(&self.spec.schema.encode(record)?)
    }

    /// Encrypts already-quantized inputs (`n_features` levels, each below `2^input_bits`).
    ///
    /// # Errors
    /// `Error::Shape` when the number of values is not the model's feature count;
    /// `Error::Input` for a value above the top level; for models that bootstrap, the errors
    /// of [`Client::evaluation_key`] (generated on first use).
    pub fn encrypt_quantized(&self, values: &[u64]) -> Result<EncryptedInput> {
        let plan = &self.spec.plan;
        let params = &plan.params;
        let d = self.spec.quantizer.n_features();
        if values.len() != d {
            return Err(Error::shape("quantized inputs", d, values.len()));
        }
        let max = self.spec.quantizer.max_level();
        if let Some(j) = values.iter().position(|&v| v > max) {
            return Err(Error::Input(format!(
                "quantized input {j} is {}, above {max}",
                values[j]
            )));
        }
        let n = params.polynomial_size;
        let seed = self.seeds.next().0;
        let mut noise = RandomGenerator::<DefaultRandomGenerator>::new(self.seeds.next());
        let distribution = TUniform::<u64>::new(params.noise_bound_log2);
        let f = extended_mask(&expand_mask(seed, n), d);
        let bodies: Vec<u64> = values
            .iter()
            .enumerate()
            .map(|(i, &m)| {
                let e: u64 = noise.random_from_distribution(distribution);
                let body = dot(&f[i..i + n], &self.key.reversed)
                    .wrapping_add(m << plan.delta_log2)
                    .wrapping_add(e);
                round_to_bits(body, plan.input_body_bits)
            })
            .collect();
        Ok(EncryptedInput {
            model_id: self.spec.model_id,
            key_id: self.key_id()?,
            seed,
            body_bits: plan.input_body_bits,
            n_inputs: d as u32,
            bodies: pack_bits(&bodies, plan.input_body_bits),
        })
    }

    /// Checks a result's model and mode against this client's.
    fn check_output(&self, output: &EncryptedOutput) -> Result<()> {
        if output.model_id != self.spec.model_id {
            return Err(Error::ModelMismatch(
                "the result was computed for another model".into(),
            ));
        }
        if output.mode != self.spec.output {
            return Err(Error::Wire(format!(
                "the result holds {}, this client expects {}",
                output.mode, self.spec.output
            )));
        }
        Ok(())
    }

    /// Decrypts the class index of a label-mode result (the best of a top-k one).
    ///
    /// # Errors
    /// As [`Client::decrypt_labels`].
    pub fn decrypt_label(&self, output: &EncryptedOutput) -> Result<usize> {
        Ok(self.decrypt_labels(output)?[0])
    }

    /// Decrypts the class indices of a label or top-k result, best first.
    ///
    /// # Errors
    /// `Error::ModelMismatch` for a result computed for another model; `Error::Wire` when its
    /// mode, shape or packing is not this client's, or the decrypted labels are out of range
    /// or repeat a class (a corrupted or mismatched result); `Error::Input` when the model
    /// returns scores, or is a regression.
    pub fn decrypt_labels(&self, output: &EncryptedOutput) -> Result<Vec<usize>> {
        self.check_output(output)?;
        let top =
            self.spec.output.labels().ok_or_else(|| {
                Error::Input("this client's model returns scores, not labels".into())
            })?;
        let n = self.spec.plan.params.lwe_dimension();
        let classes = match &self.spec.decoder.kind {
            crate::program::OutputKind::Binary { .. } => 2,
            crate::program::OutputKind::Multiclass { classes } => classes.len(),
            crate::program::OutputKind::Regression => {
                return Err(Error::Input("a regression model has no label".into()))
            }
        };
        let expected = label_bits(classes) as usize * top;
        if output.bits != LABEL_OUTPUT_BITS
            || output.n_outputs as usize != expected
            || output.lwe_dimension as usize != n
        {
            return Err(Error::Wire(format!(
                "label result shape {}×{} at {} bits, expected {expected}×{n} at {LABEL_OUTPUT_BITS} bits",
                output.n_outputs, output.lwe_dimension, output.bits
            )));
        }
        let bits = LABEL_OUTPUT_BITS;
        let values = unpack_bits(&output.coefficients, bits, expected * (n + 1))?;
        let phases: Vec<u64> = values
            .chunks_exact(n + 1)
            .map(|ct| ct[n].wrapping_sub(dot(&ct[..n], &self.key.reversed)) << (64 - bits))
            .collect();
        decode_top_labels(classes, top, &phases)
    }

    /// Decrypts the integer scores (one per model output): exactly what `simulate` computes.
    ///
    /// # Errors
    /// `Error::ModelMismatch` for a result computed for another model; `Error::Wire` when its
    /// mode (labels, not scores), shape or packing is not this client's.
    pub fn decrypt_scores(&self, output: &EncryptedOutput) -> Result<Vec<i64>> {
        let plan = &self.spec.plan;
        let n = plan.params.lwe_dimension();
        let outputs = self.spec.decoder.n_outputs();
        self.check_output(output)?;
        if output.bits != plan.output_bits
            || output.n_outputs as usize != outputs
            || output.lwe_dimension as usize != n
        {
            return Err(Error::Wire(format!(
                "result shape {}×{} at {} bits, expected {outputs}×{n} at {} bits",
                output.n_outputs, output.lwe_dimension, output.bits, plan.output_bits
            )));
        }
        let values = unpack_bits(&output.coefficients, output.bits, outputs * (n + 1))?;
        let bits = plan.output_bits;
        let modulus_mask = if bits == 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        // Delta after the modulus switch: 2^(output_delta_log2 - (64 - bits)).
        let shift = plan.output_delta_log2 - (64 - bits);
        Ok(values
            .chunks_exact(n + 1)
            .map(|ct| {
                let phase = ct[n].wrapping_sub(dot(&ct[..n], &self.key.reversed)) & modulus_mask;
                // Sign-extend from `bits` bits, then round to the nearest multiple of delta.
                let signed = ((phase << (64 - bits)) as i64) >> (64 - bits);
                signed.wrapping_add(1i64 << shift >> 1) >> shift
            })
            .collect())
    }

    /// Raw phases of full 64-bit LWE ciphertexts (mask then body, reversed-key order), as
    /// `Server::trace` returns them: for tests of every program step.
    ///
    /// # Errors
    /// `Error::Wire` for a ciphertext whose length is not the LWE dimension plus one.
    #[doc(hidden)]
    pub fn decrypt_phases(&self, cts: &[Vec<u64>]) -> Result<Vec<u64>> {
        let n = self.spec.plan.params.lwe_dimension();
        cts.iter()
            .map(|ct| {
                if ct.len() != n + 1 {
                    return Err(Error::Wire(
                        "not an LWE ciphertext of the model's dimension".into(),
                    ));
                }
                Ok(ct[n].wrapping_sub(dot(&ct[..n], &self.key.reversed)))
            })
            .collect()
    }

    /// Decrypts and post-processes: class (with probabilities) or value; in label and top-k
    /// modes, the best class alone (no probabilities: the server returned none; the ranked
    /// classes come from `decrypt_labels`).
    ///
    /// # Errors
    /// As [`Client::decrypt_scores`] or, in label and top-k modes,
    /// [`Client::decrypt_labels`]; `Error::Input` for a class index the decoder does not know.
    pub fn decrypt(&self, output: &EncryptedOutput) -> Result<Prediction> {
        match self.spec.output {
            OutputMode::Scores => self.spec.decoder.decode(&self.decrypt_scores(output)?),
            OutputMode::Label | OutputMode::TopK(_) => {
                self.spec.decoder.decode_label(self.decrypt_label(output)?)
            }
        }
    }
}
