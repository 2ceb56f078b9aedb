//! One programmable bootstrap on tfhe's shipped 128-bit sets that share our GLWE key
//! (k = 1, N = 2048, TUniform(2^17)): the classic KS-PBS set fhe-ml uses, its KS32 twin
//! (32-bit keyswitch), and the multi-bit sets (grouping 2, 3, 4). Each through shortint's
//! `apply_lookup_table` (keyswitch, modulus switch, blind rotation), one at a time (latency)
//! and 16 at once on every core (throughput), plus the classic lookup's parts: keyswitch and
//! blind rotation alone. This is how the issue-19 choice of bootstrap was measured.

use criterion::{criterion_group, criterion_main, Criterion};
use rayon::prelude::*;
use tfhe::core_crypto::prelude::{keyswitch_lwe_ciphertext, LweCiphertextOwned};
use tfhe::shortint::atomic_pattern::AtomicPatternServerKey;
use tfhe::shortint::parameters::v1_8::{
    V1_8_PARAM_MESSAGE_2_CARRY_2_KS32_PBS_TUNIFORM_2M128,
    V1_8_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128,
    V1_8_PARAM_MULTI_BIT_GROUP_2_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128,
    V1_8_PARAM_MULTI_BIT_GROUP_3_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128,
    V1_8_PARAM_MULTI_BIT_GROUP_4_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128,
};
use tfhe::shortint::{gen_keys, ClientKey, ServerKey};

fn bench_set(c: &mut Criterion, name: &str, keys: (ClientKey, ServerKey)) {
    let (cks, sks) = keys;
    let lut = sks.generate_lookup_table(|x| (x + 1) % 4);
    let ct = cks.encrypt(2);
    assert_eq!(cks.decrypt(&sks.apply_lookup_table(&ct, &lut)), 3);
    let cts: Vec<_> = (0..16).map(|i| cks.encrypt(i % 4)).collect();
    let mut group = c.benchmark_group(format!("bootstrap_{name}"));
    group.bench_function("one lookup", |b| {
        b.iter(|| sks.apply_lookup_table(&ct, &lut))
    });
    group.bench_function("16 lookups on all cores", |b| {
        b.iter(|| {
            cts.par_iter()
                .map(|ct| sks.apply_lookup_table(ct, &lut))
                .collect::<Vec<_>>()
        })
    });
    if let AtomicPatternServerKey::Standard(ap) = &sks.atomic_pattern {
        let big =
            LweCiphertextOwned::from_container(ct.ct.as_ref().to_vec(), ct.ct.ciphertext_modulus());
        let mut small = LweCiphertextOwned::new(
            0u64,
            ap.key_switching_key.output_lwe_size(),
            ct.ct.ciphertext_modulus(),
        );
        group.bench_function("keyswitch alone", |b| {
            b.iter(|| keyswitch_lwe_ciphertext(&ap.key_switching_key, &big, &mut small))
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_set(
        c,
        "classic_2_2",
        gen_keys(V1_8_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128),
    );
    bench_set(
        c,
        "ks32_2_2",
        gen_keys(V1_8_PARAM_MESSAGE_2_CARRY_2_KS32_PBS_TUNIFORM_2M128),
    );
    bench_set(
        c,
        "multibit_g2_2_2",
        gen_keys(V1_8_PARAM_MULTI_BIT_GROUP_2_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128),
    );
    bench_set(
        c,
        "multibit_g3_2_2",
        gen_keys(V1_8_PARAM_MULTI_BIT_GROUP_3_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128),
    );
    bench_set(
        c,
        "multibit_g4_2_2",
        gen_keys(V1_8_PARAM_MULTI_BIT_GROUP_4_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128),
    );
}

criterion_group! {
    name = bootstrap;
    config = Criterion::default().sample_size(10).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(3));
    targets = benches
}
criterion_main!(bootstrap);
