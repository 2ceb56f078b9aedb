//! Programmable bootstrapping for table lookups, on tfhe's shortint layer: the evaluation key
//! (tfhe's compressed server key: keyswitching and bootstrapping keys, made by the client from
//! its own GLWE secret key), and the server's lookup: keyswitch, modulus switch (shortint's
//! centered switch, as in the set's published failure probability) and blind rotation of a
//! test polynomial built from the program's step function.
//!
//! Values travel as LWE ciphertexts of dimension `k·N` under the client's GLWE key (shortint's
//! "big" key), exactly what the leveled layers produce and what a bootstrap returns, so leveled
//! and bootstrapped steps chain without conversions.

use serde::{Deserialize, Serialize};
use tfhe::core_crypto::commons::generators::DeterministicSeeder;
use tfhe::core_crypto::commons::math::random::Seed;
use tfhe::core_crypto::fft_impl::fft64::math::fft::Fft;
use tfhe::core_crypto::prelude::Seeder;
use tfhe::core_crypto::prelude::{
    allocate_and_generate_new_binary_lwe_secret_key,
    allocate_and_generate_new_lwe_compact_public_key,
    encrypt_lwe_ciphertext_with_compact_public_key, new_seeder, DefaultRandomGenerator,
    EncryptionRandomGenerator, GlweCiphertextOwned, GlweSecretKeyOwned, LweCiphertextOwned,
    LweCompactPublicKeyOwned, LweDimension, Plaintext, PolynomialSize, SecretRandomGenerator,
    TUniform,
};
use tfhe::core_crypto::prelude::{
    blind_rotate_assign_mem_optimized, blind_rotate_assign_mem_optimized_requirement,
    extract_lwe_sample_from_glwe_ciphertext, keyswitch_lwe_ciphertext,
    keyswitch_lwe_ciphertext_with_scalar_change, CastInto, ComputationBuffers, GlweSize, LweSize,
    MonomialDegree, UnsignedInteger,
};
use tfhe::shortint::atomic_pattern::AtomicPatternServerKey;
use tfhe::shortint::client_key::atomic_pattern::{
    AtomicPatternClientKey, KS32AtomicPatternClientKey, StandardAtomicPatternClientKey,
};
use tfhe::shortint::engine::ShortintEngine;
use tfhe::shortint::parameters::v1_8::V1_8_PARAM_PKE_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128;
use tfhe::shortint::server_key::ShortintBootstrappingKey;
use tfhe::shortint::{CiphertextModulus, ClientKey, CompressedServerKey, PBSParameters, ServerKey};

use crate::error::{Error, Result};
use crate::fhe::params::BootstrapSet;
use crate::fhe::wire::{self, Kind};
use crate::fhe::LeveledParameters;

/// What a server needs to bootstrap for one client: tfhe's compressed server key (seeded
/// keyswitching and bootstrapping keys), generated from the client's secret keys, and a
/// compact public key under the client's GLWE key, with which the server re-randomizes the
/// outputs of models served in label mode. Neither reveals the secret keys (tfhe's security
/// argument for its public evaluation and public keys).
#[derive(Clone, Serialize, Deserialize)]
pub struct EvaluationKey {
    /// The parameter set (by name, as in every plan); a key for another set is refused.
    pub(crate) params: LeveledParameters,
    pub(crate) key: CompressedServerKey,
    pub(crate) public_key: LweCompactPublicKeyOwned<u64>,
}

/// The compact public key's parameters: tfhe's shipped set for public-key encryption under the
/// 2_2 set's big key, `V1_8_PARAM_PKE_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128` (LWE dimension
/// 2048, TUniform(2^17)): the dimension and noise of our GLWE key, read from the constant.
fn public_key_parameters() -> (usize, u32) {
    let p = V1_8_PARAM_PKE_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128;
    let bound = match p.encryption_noise_distribution {
        tfhe::core_crypto::prelude::DynamicDistribution::TUniform(t) => t.bound_log2(),
        tfhe::core_crypto::prelude::DynamicDistribution::Gaussian(_) => {
            unreachable!("a TUNIFORM set has TUniform noise")
        }
    };
    (p.encryption_lwe_dimension.0, bound)
}

/// Identifies an evaluation key (a digest of its contents): the client stamps it on every
/// input, so a server refuses ciphertexts from a client whose key it does not hold instead of
/// returning garbage.
pub type KeyId = [u8; 16];

impl std::fmt::Debug for EvaluationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EvaluationKey({})", self.params.name)
    }
}

impl EvaluationKey {
    /// Generates the key from the client's GLWE secret key (`k = 1`, natural coefficient order)
    /// and a fresh small LWE key, which is dropped afterwards: results come back under the
    /// GLWE key, so the client never needs it again. With `seed`, everything random derives
    /// from it (reproducible runs); otherwise from the OS.
    pub(crate) fn generate(
        params: &LeveledParameters,
        glwe_key: Vec<u64>,
        seed: Option<Seed>,
    ) -> Result<Self> {
        let pbs = params.bootstrap_parameters()?;
        let mut seeder: Box<dyn Seeder> = match seed {
            Some(seed) => Box::new(DeterministicSeeder::<DefaultRandomGenerator>::new(seed)),
            None => new_seeder(),
        };
        let mut generator = SecretRandomGenerator::<DefaultRandomGenerator>::new(seeder.seed());
        let glwe =
            GlweSecretKeyOwned::from_container(glwe_key, PolynomialSize(params.polynomial_size));
        let (pk_dimension, pk_noise) = public_key_parameters();
        if pk_dimension != params.lwe_dimension() {
            return Err(Error::Wire(format!(
                "tfhe's public-key set has dimension {pk_dimension}, {} has {}",
                params.name,
                params.lwe_dimension()
            )));
        }
        let mut encryption = EncryptionRandomGenerator::<DefaultRandomGenerator>::new(
            seeder.seed(),
            seeder.as_mut(),
        );
        let public_key = allocate_and_generate_new_lwe_compact_public_key(
            &glwe.clone().into_lwe_secret_key(),
            TUniform::<u64>::new(pk_noise),
            CiphertextModulus::new_native(),
            &mut encryption,
        );
        let small_dimension = LweDimension(pbs.lwe_dimension());
        let atomic_pattern = match pbs {
            BootstrapSet::Classic(p) => {
                AtomicPatternClientKey::Standard(StandardAtomicPatternClientKey::from_raw_parts(
                    glwe,
                    allocate_and_generate_new_binary_lwe_secret_key(
                        small_dimension,
                        &mut generator,
                    ),
                    PBSParameters::PBS(p),
                    None,
                ))
            }
            BootstrapSet::KeySwitch32(p) => {
                AtomicPatternClientKey::KeySwitch32(KS32AtomicPatternClientKey::from_raw_parts(
                    glwe,
                    allocate_and_generate_new_binary_lwe_secret_key(
                        small_dimension,
                        &mut generator,
                    ),
                    p,
                ))
            }
        };
        let client = ClientKey { atomic_pattern };
        // shortint draws the keys' randomness from a thread-local engine: seed it for this
        // generation, then put the previous one back.
        let engine = ShortintEngine::new_from_seeder(seeder.as_mut());
        let previous = ShortintEngine::with_thread_local_mut(|e| std::mem::replace(e, engine));
        let key = CompressedServerKey::new(&client);
        ShortintEngine::with_thread_local_mut(|e| *e = previous);
        Ok(Self {
            params: params.clone(),
            key,
            public_key,
        })
    }

    /// Serializes into a versioned, size-limited, integrity-checked blob (about 29 MiB).
    ///
    /// # Errors
    /// `Error::Wire` when the key does not serialize within the kind's 64 MiB limit.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        wire::seal(Kind::EvaluationKey, self)
    }

    /// Reads a blob written by `to_bytes`, refusing anything else (a secret key included).
    /// The key's contents are checked later, by [`EvaluationKey::expand`].
    ///
    /// # Errors
    /// `Error::Wire` for malformed, truncated or corrupted bytes or another format version;
    /// `Error::WrongKind` for a blob of another kind; `Error::TooLarge` for a payload over
    /// the 64 MiB limit.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        wire::open(Kind::EvaluationKey, bytes)
    }

    /// The key's identifier: a BLAKE3 digest of its serialized contents.
    ///
    /// # Errors
    /// `Error::Wire` if the key does not serialize.
    pub fn id(&self) -> Result<KeyId> {
        let bytes = bincode::serialize(&(&self.key, &self.public_key))
            .map_err(|e| Error::Wire(e.to_string()))?;
        let mut id = [0u8; 16];
        id.copy_from_slice(&blake3::hash(&bytes).as_bytes()[..16]);
        Ok(id)
    }

    /// Checks the key against the parameter set, then expands it for bootstrapping (about
    /// 0.3 s; share the result between the servers of several models with an `Arc`).
    ///
    /// # Errors
    /// `Error::Wire` when the key is for another parameter set, the set has no bootstrap
    /// parameters, or the key's dimensions do not conform to the set.
    pub fn expand(&self, params: &LeveledParameters) -> Result<Bootstrapper> {
        if self.params != *params {
            return Err(Error::Wire(format!(
                "the evaluation key is for {}, the model uses {}",
                self.params.name, params.name
            )));
        }
        let pbs = params.bootstrap_parameters()?;
        let conformant = {
            use tfhe::conformance::ParameterSetConformant;
            // The maximum degree only bounds shortint's own carry arithmetic, unused here.
            self.key
                .is_conformant(&(pbs.atomic_pattern(), self.key.max_degree))
        };
        let (pk_dimension, _) = public_key_parameters();
        let pk = &self.public_key;
        if !conformant
            || pk.lwe_dimension().0 != pk_dimension
            || !pk.ciphertext_modulus().is_native_modulus()
        {
            return Err(Error::Wire(format!(
                "the evaluation key's dimensions do not match {}",
                params.name
            )));
        }
        Ok(Bootstrapper {
            params: params.clone(),
            id: self.id()?,
            public_key: self.public_key.clone(),
            key: self.key.decompress(),
            lwe_size: params.lwe_dimension() + 1,
            polynomial_size: params.polynomial_size,
        })
    }
}

/// A client's evaluation key expanded for the server: bootstraps LWE ciphertexts through test
/// polynomials. About 120 MiB in memory for the 2_2 set (Fourier bootstrapping key and
/// keyswitching key).
pub struct Bootstrapper {
    /// The parameter set it bootstraps for.
    pub params: LeveledParameters,
    /// The evaluation key's identifier (inputs must carry it).
    pub id: KeyId,
    key: ServerKey,
    public_key: LweCompactPublicKeyOwned<u64>,
    lwe_size: usize,
    polynomial_size: usize,
}

impl Bootstrapper {
    /// Bytes it holds, from tfhe's layouts: the Fourier bootstrapping key (`n × (k+1)² ×
    /// levels × N/2` complex values of 16 bytes), the keyswitching key (`k·N × levels ×
    /// (n+1)` words of 64 bits, 32 for KS32) and the compact public key (`2 × k·N` words).
    /// About 115 MiB for the classic 2_2 set, 86 MiB for its KS32 twin; what the service's
    /// key cache counts against `--key-cache-mib`.
    pub fn heap_bytes(&self) -> usize {
        let Ok(p) = self.params.bootstrap_parameters() else {
            return 0;
        };
        let (n, k, big_n) = (p.lwe_dimension(), p.glwe_dimension(), p.polynomial_size());
        let bsk = n * (k + 1) * (k + 1) * p.pbs_level() * (big_n / 2) * 16;
        let ksk = k * big_n * p.ks_level() * (n + 1) * p.keyswitch_word_bytes();
        let pk = 2 * self.params.lwe_dimension() * 8;
        bsk + ksk + pk
    }
}

/// A test polynomial for one neuron (a trivial GLWE whose body holds the table), the phase
/// shift that moves the neuron's window start to coefficient 0, and the coefficients to read.
pub struct TestPolynomial {
    acc: GlweCiphertextOwned<u64>,
    shift: u64,
    reads: Vec<usize>,
}

impl TestPolynomial {
    /// A table given coefficient by coefficient (torus values), read at position 0 of the
    /// rotation: position `p < N` reads `coefficients[p]`, `N + p` reads minus it.
    pub fn from_coefficients(coefficients: &[u64]) -> Self {
        Self::windowed(coefficients, 0, vec![0])
    }

    /// A table of `N` coefficients (torus values) whose window starts `window_start`
    /// positions from zero (the rotation is shifted back by that many positions, `2N` to the
    /// circle), read at each of `reads` (coefficient indices, each one output ciphertext).
    pub fn windowed(coefficients: &[u64], window_start: i64, reads: Vec<usize>) -> Self {
        let n = coefficients.len();
        let position = 1u64 << (64 - 1 - n.trailing_zeros());
        let mut acc = GlweCiphertextOwned::new(
            0u64,
            GlweSize(2),
            PolynomialSize(coefficients.len()),
            CiphertextModulus::new_native(),
        );
        acc.get_mut_body().as_mut().copy_from_slice(coefficients);
        Self {
            acc,
            shift: (window_start as u64).wrapping_mul(position).wrapping_neg(),
            reads,
        }
    }
}

impl Bootstrapper {
    /// Adds to an LWE ciphertext (natural key order, mask then body) a fresh encryption of
    /// zero under the client's compact public key whose body noise is TUniform(2^flood_log2):
    /// the mask becomes a fresh RLWE sample (the server's binary randomness, never sent) and the
    /// noise is flooded. Randomness comes from the operating system.
    ///
    /// # Errors
    /// `Error::Wire` when `ct` is not `k·N + 1` coefficients long.
    pub fn rerandomize(&self, ct: &mut [u64], flood_log2: u32) -> Result<()> {
        if ct.len() != self.lwe_size {
            return Err(Error::Wire(
                "not an LWE ciphertext of the key's dimension".into(),
            ));
        }
        let (_, pk_noise) = public_key_parameters();
        let mut seeder = new_seeder();
        let mut encryption = EncryptionRandomGenerator::<DefaultRandomGenerator>::new(
            seeder.seed(),
            seeder.as_mut(),
        );
        let mut zero = LweCiphertextOwned::new(
            0u64,
            LweSize(self.lwe_size),
            CiphertextModulus::new_native(),
        );
        encrypt_lwe_ciphertext_with_compact_public_key(
            &self.public_key,
            &mut zero,
            Plaintext(0u64),
            TUniform::<u64>::new(pk_noise),
            TUniform::<u64>::new(flood_log2),
            encryption.noise_generator_mut(),
        );
        for (c, z) in ct.iter_mut().zip(zero.as_ref()) {
            *c = c.wrapping_add(*z);
        }
        Ok(())
    }

    /// Bootstraps one LWE ciphertext (mask then body, dimension `k·N`) whose phase is the
    /// lookup's input at `input_delta` per unit: keyswitch, shortint's modulus switch and blind
    /// rotation (what `ServerKey::apply_lookup_table` does), then one sample extraction per
    /// read; returns the table's outputs at `output_delta` per unit.
    ///
    /// # Errors
    /// `Error::Wire` when `lwe` is not `k·N + 1` coefficients long, or the key is not a
    /// KS-PBS or KS32 key with a classic bootstrapping key.
    pub fn lookup(
        &self,
        lwe: Vec<u64>,
        table: &TestPolynomial,
        offset: u64,
    ) -> Result<Vec<Vec<u64>>> {
        if lwe.len() != self.lwe_size {
            return Err(Error::Wire(format!(
                "an LWE ciphertext of {} coefficients, the key takes {}",
                lwe.len(),
                self.lwe_size
            )));
        }
        let mut lwe = lwe;
        // The window start moves to coefficient 0; shortint's centered modulus switch reads
        // floor(phase), so half a position up makes it round to the nearest position, as the
        // clear twin does.
        let half_position = 1u64 << (63 - self.polynomial_size.trailing_zeros() - 1);
        let body = lwe.last_mut().expect("non-empty");
        *body = body.wrapping_add(half_position).wrapping_add(table.shift);
        let input = LweCiphertextOwned::from_container(lwe, CiphertextModulus::new_native());
        // Keyswitch to the small key (on 64 or 32 bits), then switch and rotate.
        let acc = match &self.key.atomic_pattern {
            AtomicPatternServerKey::Standard(ap) => {
                let mut small = LweCiphertextOwned::new(
                    0u64,
                    ap.key_switching_key.output_lwe_size(),
                    CiphertextModulus::new_native(),
                );
                keyswitch_lwe_ciphertext(&ap.key_switching_key, &input, &mut small);
                switch_and_rotate(&ap.bootstrapping_key, &small, &table.acc)?
            }
            AtomicPatternServerKey::KeySwitch32(ap) => {
                let mut small = LweCiphertextOwned::new(
                    0u32,
                    ap.key_switching_key.output_lwe_size(),
                    ap.key_switching_key.ciphertext_modulus(),
                );
                keyswitch_lwe_ciphertext_with_scalar_change(
                    &ap.key_switching_key,
                    &input,
                    &mut small,
                );
                switch_and_rotate(&ap.bootstrapping_key, &small, &table.acc)?
            }
            _ => {
                return Err(Error::Wire(
                    "the evaluation key is not a KS-PBS or KS32 key".into(),
                ))
            }
        };
        Ok(table
            .reads
            .iter()
            .map(|&r| {
                let mut out = LweCiphertextOwned::new(
                    0u64,
                    LweSize(self.lwe_size),
                    CiphertextModulus::new_native(),
                );
                extract_lwe_sample_from_glwe_ciphertext(&acc, &mut out, MonomialDegree(r));
                let mut out = out.into_container();
                let body = out.last_mut().expect("non-empty");
                *body = body.wrapping_add(offset);
                out
            })
            .collect())
    }
}

/// Shortint's centered modulus switch of a keyswitched (small) ciphertext to `2N`, then the
/// blind rotation of a copy of the test polynomial by it.
///
/// # Errors
/// `Error::Wire` when the key is not a classic (one-bit) bootstrapping key.
fn switch_and_rotate<T>(
    key: &ShortintBootstrappingKey<T>,
    small: &LweCiphertextOwned<T>,
    table: &GlweCiphertextOwned<u64>,
) -> Result<GlweCiphertextOwned<u64>>
where
    T: UnsignedInteger + CastInto<usize>,
{
    let ShortintBootstrappingKey::Classic {
        bsk,
        modulus_switch_noise_reduction_key: modulus_switch,
    } = key
    else {
        return Err(Error::Wire(
            "the evaluation key is not a classic bootstrapping key".into(),
        ));
    };
    let mut acc = table.clone();
    let polynomial_size = acc.polynomial_size();
    let switched = modulus_switch.lwe_ciphertext_modulus_switch::<usize, _>(
        small,
        polynomial_size.to_blind_rotation_input_modulus_log(),
    );
    let fft = Fft::new(polynomial_size);
    let fft = fft.as_view();
    let mut buffers = ComputationBuffers::new();
    buffers.resize(
        blind_rotate_assign_mem_optimized_requirement::<u64>(acc.glwe_size(), polynomial_size, fft)
            .unaligned_bytes_required(),
    );
    blind_rotate_assign_mem_optimized(&switched, &mut acc, bsk, fft, buffers.stack());
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfhe::core_crypto::prelude::{
        allocate_and_generate_new_binary_glwe_secret_key, decrypt_lwe_ciphertext,
        encrypt_lwe_ciphertext, EncryptionRandomGenerator, GlweDimension, Plaintext,
    };

    /// Bootstraps encryptions of known positions through an identity table and checks what a
    /// lookup reads: centred on the encrypted position (the half-position offset matches
    /// shortint's centered modulus switch), negacyclic past the half circle, and with the
    /// spread tfhe's noise formulas predict.
    #[test]
    fn lookup_reads_the_encrypted_position_with_the_predicted_noise() {
        // Both shipped patterns: KS32 (the default) and the classic KS-PBS of older models.
        for params in LeveledParameters::known() {
            lookup_reads(params);
        }
    }

    fn lookup_reads(params: LeveledParameters) {
        let n = params.polynomial_size;
        let mut seeder = new_seeder();
        let mut secret = SecretRandomGenerator::<DefaultRandomGenerator>::new(seeder.seed());
        let glwe: GlweSecretKeyOwned<u64> = allocate_and_generate_new_binary_glwe_secret_key(
            GlweDimension(1),
            PolynomialSize(n),
            &mut secret,
        );
        let lwe_key = glwe.clone().into_lwe_secret_key();
        let key = EvaluationKey::generate(&params, glwe.into_container(), None).unwrap();
        let key = EvaluationKey::from_bytes(&key.to_bytes().unwrap()).unwrap();
        let bootstrapper = key.expand(&params).unwrap();
        // Identity table: entry q holds q at 2^52 per position, so a bootstrap's output noise
        // (2^49.2) stays a small fraction of a position.
        let unit = 1u64 << 52;
        let mut acc = GlweCiphertextOwned::new(
            0u64,
            tfhe::core_crypto::prelude::GlweSize(2),
            PolynomialSize(n),
            CiphertextModulus::new_native(),
        );
        for (q, c) in acc.get_mut_body().as_mut().iter_mut().enumerate() {
            *c = (q as u64).wrapping_mul(unit);
        }
        let table = TestPolynomial {
            acc,
            shift: 0,
            reads: vec![0, 3],
        };
        let mut encryption = EncryptionRandomGenerator::<DefaultRandomGenerator>::new(
            seeder.seed(),
            seeder.as_mut(),
        );
        let position = 1u64 << 52;
        let read = |p: u64, encryption: &mut EncryptionRandomGenerator<DefaultRandomGenerator>| {
            let mut ct = LweCiphertextOwned::new(
                0u64,
                lwe_key.lwe_dimension().to_lwe_size(),
                CiphertextModulus::new_native(),
            );
            encrypt_lwe_ciphertext(
                &lwe_key,
                &mut ct,
                Plaintext(p.wrapping_mul(position)),
                params_noise(&params),
                encryption,
            );
            let out = bootstrapper.lookup(ct.into_container(), &table, 0).unwrap();
            // The second read is the table three positions further on.
            let further =
                LweCiphertextOwned::from_container(out[1].clone(), CiphertextModulus::new_native());
            let out =
                LweCiphertextOwned::from_container(out[0].clone(), CiphertextModulus::new_native());
            let a = decrypt_lwe_ciphertext(&lwe_key, &out).0 as i64;
            let b = decrypt_lwe_ciphertext(&lwe_key, &further).0 as i64;
            // (negated past the half circle; each read carries the bootstrap's output noise,
            // 2^49.2: a seventh of a unit)
            assert!((((b - a) as f64 / unit as f64).abs() - 3.0).abs() < 1.5);
            let phase = decrypt_lwe_ciphertext(&lwe_key, &out).0 as i64;
            (phase as f64 / unit as f64).round() as i64
        };
        let centre = 1000i64;
        let samples: Vec<i64> = (0..300)
            .map(|_| read(centre as u64, &mut encryption) - centre)
            .collect();
        let mean = samples.iter().sum::<i64>() as f64 / samples.len() as f64;
        let sd = (samples
            .iter()
            .map(|&e| (e as f64 - mean).powi(2))
            .sum::<f64>()
            / samples.len() as f64)
            .sqrt();
        let noise = params.bootstrap_noise().unwrap();
        let predicted = noise.lookup_positions(0.0, 1.0);
        eprintln!(
            "{}: lookup position error: mean {mean:.3}, sd {sd:.3}, predicted {predicted:.3} \
             (modulus switch {:.3}, keyswitch {:.3}); output sd 2^{:.2}",
            params.name,
            noise.modulus_switch_positions,
            noise.keyswitch_positions,
            noise.output_std.log2()
        );
        // Four standard errors: a biased centre (half a position or more) would fail.
        let standard_error = sd / (samples.len() as f64).sqrt();
        assert!(
            mean.abs() < 4.0 * standard_error,
            "lookups centred at {mean} positions off"
        );
        assert!(
            (0.75..1.3).contains(&(sd / predicted)),
            "measured spread {sd:.2} positions, tfhe's formulas predict {predicted:.2}"
        );
        // A ciphertext under the reversed key (the packed inputs' convention), its mask
        // reversed: the same phase under the natural key.
        let reversed_key: Vec<u64> = lwe_key.as_ref().iter().rev().copied().collect();
        let mask = crate::fhe::kernels::expand_mask(12345, n);
        let body = crate::fhe::kernels::dot(&mask, &reversed_key)
            .wrapping_add(300u64.wrapping_mul(position));
        let mut ct: Vec<u64> = mask.iter().rev().copied().collect();
        ct.push(body);
        let out = bootstrapper.lookup(ct, &table, 0).unwrap();
        let out =
            LweCiphertextOwned::from_container(out[0].clone(), CiphertextModulus::new_native());
        let got = (decrypt_lwe_ciphertext(&lwe_key, &out).0 as i64 as f64 / unit as f64).round();
        assert!(
            (got - 300.0).abs() <= 25.0,
            "a reversed-key ciphertext reads {got}, not about 300"
        );
        // Past the half circle the bootstrap returns minus the table. Read 40 positions past it
        // (8 sigma): at N + 7 the position noise put the first read before N and the second
        // after it in about 5% of runs, and the pair check in `read` failed.
        let past = read((n as u64) + 40, &mut encryption);
        assert!((past + 40).abs() <= 25, "negacyclic half read {past}");
    }

    fn params_noise(
        params: &LeveledParameters,
    ) -> tfhe::core_crypto::prelude::DynamicDistribution<u64> {
        tfhe::core_crypto::prelude::DynamicDistribution::new_t_uniform(params.noise_bound_log2)
    }
}
