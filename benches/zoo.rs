//! Encrypted inference of issue 16's families, one sample at a time: the leveled linear
//! families (linear SVM, ridge, Poisson) and the bootstrapped tree ensembles (gradient-boosted
//! trees, a regression tree and forest).

use criterion::{criterion_group, criterion_main, Criterion};
use fhe_ml::client::Client;
use fhe_ml::data::{load_csv, Split};
use fhe_ml::prelude::*;

fn bench_model(c: &mut Criterion, group: &str, name: &str, model: &CompiledModel, row: &[f64]) {
    let client = Client::new_seeded(model.client_spec(), 1).unwrap();
    let server = if model.needs_evaluation_key() {
        Server::with_evaluation_key(model.server_model(), &client.evaluation_key().unwrap())
            .unwrap()
    } else {
        Server::new(model.server_model()).unwrap()
    };
    let ct = client.encrypt(row).unwrap();
    let mut g = c.benchmark_group(group);
    g.bench_function(
        format!("{name}: infer ({} bootstraps)", model.bootstraps()),
        |b| b.iter(|| server.infer(&ct).unwrap()),
    );
    g.finish();
}

fn regression(dataset: &str) -> Split<f64> {
    load_csv(format!("data/{dataset}.csv"))
        .unwrap()
        .split_regression(0.2, 42)
        .unwrap()
}

fn benches(c: &mut Criterion) {
    let bc = load_csv("data/breast_cancer.csv")
        .unwrap()
        .split(0.2, 42)
        .unwrap();
    let row = bc.test_raw.row(0).to_vec();
    let svm = compile(
        &SvmParams::default().fit(&bc).unwrap(),
        &bc,
        Options::default(),
    )
    .unwrap();
    bench_model(c, "zoo_leveled", "breast cancer linear SVM", &svm, &row);
    let gbdt = compile(
        &GbdtParams::default().fit(&bc).unwrap(),
        &bc,
        Options::default(),
    )
    .unwrap();
    bench_model(
        c,
        "zoo_bootstrapped",
        "breast cancer gbdt 30x depth 3",
        &gbdt,
        &row,
    );

    let diabetes = regression("diabetes");
    let row = diabetes.test_raw.row(0).to_vec();
    let ridge = compile(
        &PenalizedParams::ridge().fit(&diabetes).unwrap(),
        &diabetes,
        Options::default(),
    )
    .unwrap();
    bench_model(c, "zoo_leveled", "diabetes ridge", &ridge, &row);
    let tree = compile(
        &TreeRegressorParams::tree().fit(&diabetes).unwrap(),
        &diabetes,
        Options::default(),
    )
    .unwrap();
    bench_model(
        c,
        "zoo_bootstrapped",
        "diabetes regression tree depth 4",
        &tree,
        &row,
    );

    let auto = regression("auto_mpg");
    let row = auto.test_raw.row(0).to_vec();
    let forest = compile(
        &TreeRegressorParams::forest().fit(&auto).unwrap(),
        &auto,
        Options::default(),
    )
    .unwrap();
    bench_model(
        c,
        "zoo_bootstrapped",
        "auto_mpg regression forest 10x depth 4",
        &forest,
        &row,
    );

    let bikes = regression("bikeshare");
    let row = bikes.test_raw.row(0).to_vec();
    let poisson = compile(
        &GlmParams::poisson().fit(&bikes).unwrap(),
        &bikes,
        Options::default(),
    )
    .unwrap();
    bench_model(c, "zoo_leveled", "bikeshare poisson", &poisson, &row);
}

criterion_group! {
    name = zoo;
    config = Criterion::default().sample_size(10).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(4));
    targets = benches
}
criterion_main!(zoo);
