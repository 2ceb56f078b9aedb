//! Per-sample encrypt / infer / decrypt latency and batch throughput (all cores) for
//! breast cancer (30 features, 2 classes), digits (64 features, 10 classes) and a synthetic
//! 100-feature, 2-class dataset; and the server's inference in label and top-3 modes.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use fhe_ml::data::{load_csv, parse_csv_str};
use fhe_ml::prelude::*;
use fhe_ml::train;
use ndarray::Axis;
use rayon::prelude::*;

fn synthetic_100() -> String {
    let mut text: String = (0..100).map(|i| format!("f{i},")).collect();
    text += "target\n";
    let mut state = 7u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for _ in 0..600 {
        let x: Vec<f64> = (0..100).map(|_| next() * 2.0 - 1.0).collect();
        let z: f64 = x
            .iter()
            .enumerate()
            .map(|(i, v)| v * ((i % 7) as f64 - 3.0))
            .sum();
        for v in &x {
            text += &format!("{v:.5},");
        }
        text += if z > 0.0 { "1\n" } else { "0\n" };
    }
    text
}

fn bench_dataset(c: &mut Criterion, name: &str, table: Table) {
    let split = table.split(0.2, 42).unwrap();
    let fitted = train::fit_logistic(&split).unwrap();
    let model = compile(&fitted, &split, Quantization::default()).unwrap();
    let (client, server) = model.keygen().unwrap();
    let rows: Vec<Vec<f64>> = split
        .test_raw
        .axis_iter(Axis(0))
        .map(|r| r.to_vec())
        .collect();
    let row = &rows[0];
    let ct = client.encrypt(row).unwrap();
    let out = server.infer(&ct).unwrap();

    let mut group = c.benchmark_group(name);
    group.bench_function("keygen", |b| b.iter(|| model.keygen().unwrap()));
    group.bench_function("encrypt", |b| b.iter(|| client.encrypt(row).unwrap()));
    group.bench_function("infer", |b| b.iter(|| server.infer(&ct).unwrap()));
    group.bench_function("decrypt", |b| b.iter(|| client.decrypt(&out).unwrap()));
    group.bench_function("encrypt+infer+decrypt", |b| {
        b.iter(|| {
            client
                .decrypt(&server.infer(&client.encrypt(row).unwrap()).unwrap())
                .unwrap()
        })
    });
    group.bench_function("wire: infer_bytes", |b| {
        let blob = ct.to_bytes().unwrap();
        b.iter(|| server.infer_bytes(&blob).unwrap())
    });
    group.throughput(Throughput::Elements(rows.len() as u64));
    group.bench_function("batch encrypt+infer+decrypt (all cores)", |b| {
        b.iter_batched(
            || (),
            |_| {
                rows.par_iter()
                    .map(|r| {
                        client
                            .decrypt(&server.infer(&client.encrypt(r).unwrap()).unwrap())
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// Label and top-k modes: the server's extra cost of returning only sanitized labels.
fn bench_label(c: &mut Criterion, name: &str, table: Table, mode: OutputMode) {
    let split = table.split(0.2, 42).unwrap();
    let fitted = train::fit_logistic(&split).unwrap();
    let model = compile(&fitted, &split, Quantization::default())
        .unwrap()
        .with_output(mode)
        .unwrap();
    let (client, server) = model.keygen().unwrap();
    let row = split.test_rows().swap_remove(0);
    let ct = client.encrypt(&row).unwrap();
    let mut group = c.benchmark_group(format!("{name}_{}", mode.to_string().replace('-', "")));
    group.sample_size(10);
    group.bench_function(format!("infer ({mode} mode)"), |b| {
        b.iter(|| server.infer(&ct).unwrap())
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_dataset(
        c,
        "breast_cancer",
        load_csv("data/breast_cancer.csv").unwrap(),
    );
    bench_dataset(c, "digits", load_csv("data/digits.csv").unwrap());
    bench_label(
        c,
        "breast_cancer",
        load_csv("data/breast_cancer.csv").unwrap(),
        OutputMode::Label,
    );
    let digits = load_csv("data/digits.csv").unwrap();
    bench_label(c, "digits", digits.clone(), OutputMode::Label);
    bench_label(c, "digits", digits, OutputMode::TopK(3));
    bench_dataset(
        c,
        "synthetic_100",
        parse_csv_str(&synthetic_100(), "synthetic_100").unwrap(),
    );
}

criterion_group! {
    name = inference;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = benches
}
criterion_main!(inference);
