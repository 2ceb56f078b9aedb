//! ONNX import: reading the largest fixtures (a 10-tree digits forest, 53 KB; the PyTorch
//! 64-32-10 network) and compiling them for their data, and one encrypted inference of the
//! imported breast-cancer forest and scikit-learn MLP.

use criterion::{criterion_group, criterion_main, Criterion};
use fhe_ml::client::Client;
use fhe_ml::data::load_csv;
use fhe_ml::prelude::*;

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("onnx_import");
    let digits = load_csv("data/digits.csv").unwrap().split(0.2, 42).unwrap();
    for name in ["digits-forest", "digits-torch-mlp"] {
        let bytes = std::fs::read(format!("tests/fixtures/onnx/{name}.onnx")).unwrap();
        group.bench_function(format!("{name}: read ({} bytes)", bytes.len()), |b| {
            b.iter(|| fhe_ml::import::onnx(bytes.as_slice()).unwrap())
        });
        let model = fhe_ml::import::onnx(bytes.as_slice()).unwrap();
        group.bench_function(format!("{name}: compile"), |b| {
            b.iter(|| fhe_ml::compile(&model, &digits, Options::default()).unwrap())
        });
    }
    let bc = load_csv("data/breast_cancer.csv")
        .unwrap()
        .split(0.2, 42)
        .unwrap();
    let row = bc.test_raw.row(0).to_vec();
    for name in ["bc-forest", "bc-mlp"] {
        let model = fhe_ml::import::onnx(format!("tests/fixtures/onnx/{name}.onnx")).unwrap();
        let model = fhe_ml::compile(&model, &bc, Options::default()).unwrap();
        let client = Client::new_seeded(model.client_spec(), 1).unwrap();
        let server =
            Server::with_evaluation_key(model.server_model(), &client.evaluation_key().unwrap())
                .unwrap();
        let ct = client.encrypt(&row).unwrap();
        group.bench_function(
            format!("{name}: infer ({} bootstraps)", model.bootstraps()),
            |b| b.iter(|| server.infer(&ct).unwrap()),
        );
    }
    group.finish();
}

criterion_group! {
    name = import;
    config = Criterion::default().sample_size(10);
    targets = benches
}
criterion_main!(import);
