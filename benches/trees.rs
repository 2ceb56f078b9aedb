//! Encrypted decision tree (depth 4) and 10-tree forest inference on breast cancer.

use criterion::{criterion_group, criterion_main, Criterion};
use fhe_ml::client::Client;
use fhe_ml::compiler::compile_forest;
use fhe_ml::data::load_csv;
use fhe_ml::prelude::*;
use fhe_ml::train::trees::{fit_forest, ForestConfig};

fn benches(c: &mut Criterion) {
    let split = load_csv("data/breast_cancer.csv")
        .unwrap()
        .split(0.2, 42)
        .unwrap();
    let row = split.test_raw.row(0).to_vec();
    let mut group = c.benchmark_group("breast_cancer_trees");
    for (name, config) in [
        ("tree depth 4", ForestConfig::default()),
        ("forest 10 trees depth 4", ForestConfig::forest()),
    ] {
        let model = compile_forest(&fit_forest(&split, &config).unwrap(), &split).unwrap();
        let client = Client::new_seeded(model.client_spec(), 1).unwrap();
        let server =
            Server::with_evaluation_key(model.server_model(), &client.evaluation_key().unwrap())
                .unwrap();
        let ct = client.encrypt(&row).unwrap();
        group.bench_function(
            format!(
                "{name}: infer ({} bootstraps)",
                model.program().bootstraps()
            ),
            |b| b.iter(|| server.infer(&ct).unwrap()),
        );
    }
    group.finish();
}

criterion_group! {
    name = trees;
    config = Criterion::default().sample_size(10).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(5));
    targets = benches
}
criterion_main!(trees);
