//! Encrypted MLP inference on digits (64-32-10 pruned to 24 hidden neurons, one bootstrap each): evaluation
//! key generation and loading, one inference, and its steps (the first leveled layer and the
//! bootstrapped lookups).

use criterion::{criterion_group, criterion_main, Criterion};
use fhe_ml::client::Client;
use fhe_ml::compiler::compile_mlp;
use fhe_ml::data::load_csv;
use fhe_ml::fhe::EvaluationKey;
use fhe_ml::prelude::*;
use fhe_ml::train::mlp::{fit_mlp, MlpConfig};

fn benches(c: &mut Criterion) {
    let split = load_csv("data/digits.csv").unwrap().split(0.2, 42).unwrap();
    let mlp = fit_mlp(&split, &MlpConfig::default()).unwrap();
    let model = compile_mlp(&mlp, &split).unwrap();
    let client = Client::new_seeded(model.client_spec(), 1).unwrap();
    let key = client.evaluation_key().unwrap();
    let blob = key.to_bytes().unwrap();
    let server = Server::with_evaluation_key(model.server_model(), &key).unwrap();
    let row = split.test_raw.row(0).to_vec();
    let ct = client.encrypt(&row).unwrap();
    let out = server.infer(&ct).unwrap();

    let mut group = c.benchmark_group("digits_mlp_64_32_10");
    group.bench_function("evaluation key: generate (client)", |b| {
        b.iter(|| {
            Client::new(model.client_spec())
                .unwrap()
                .evaluation_key()
                .unwrap()
        })
    });
    group.bench_function("evaluation key: load and expand (server)", |b| {
        b.iter(|| {
            Server::with_evaluation_key(
                model.server_model(),
                &EvaluationKey::from_bytes(&blob).unwrap(),
            )
            .unwrap()
        })
    });
    group.bench_function("encrypt", |b| b.iter(|| client.encrypt(&row).unwrap()));
    group.bench_function("infer (one bootstrap per hidden neuron, all cores)", |b| {
        b.iter(|| server.infer(&ct).unwrap())
    });
    group.bench_function("decrypt", |b| b.iter(|| client.decrypt(&out).unwrap()));
    group.finish();
}

criterion_group! {
    name = mlp;
    config = Criterion::default().sample_size(10).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(5));
    targets = benches
}
criterion_main!(mlp);
