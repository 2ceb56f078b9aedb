//! The encrypted interpreter against its clear twin, on whole test splits of every shipped
//! dataset, and the quantized model against the float one.

use fhe_ml::data::load_csv;
use fhe_ml::prelude::*;
use fhe_ml::train;

/// Encrypts, infers and decrypts every test row; checks scores equal `simulate` bit for bit,
/// and returns (float, quantized, encrypted) label vectors and the truth.
fn check_logistic(path: &str) -> (Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>) {
    let split = load_csv(path).unwrap().split(0.2, 42).unwrap();
    let fitted = train::fit_logistic(&split).unwrap();
    let model = compile(&fitted, &split, Quantization::default()).unwrap();
    let (client, server) = model.keygen().unwrap();
    let float = fitted.predict(split.test.records());
    let mut quantized = Vec::new();
    let mut encrypted = Vec::new();
    for (i, row) in split.test_rows().iter().enumerate() {
        let expected = model.simulate(row).unwrap();
        let ct = client.encrypt(row).unwrap();
        let out = server.infer(&ct).unwrap();
        assert_eq!(
            client.decrypt_scores(&out).unwrap(),
            expected,
            "{path} row {i}"
        );
        quantized.push(model.predict_simulated(row).unwrap().class_index().unwrap());
        encrypted.push(client.decrypt(&out).unwrap().class_index().unwrap());
    }
    let truth = split.test.targets().to_vec();
    (float, quantized, encrypted, truth)
}

fn agreement(a: &[usize], b: &[usize]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

fn assert_dataset(path: &str) {
    let (float, quantized, encrypted, truth) = check_logistic(path);
    assert_eq!(
        encrypted, quantized,
        "{path}: encrypted labels differ from simulate"
    );
    let q_vs_f = agreement(&quantized, &float);
    assert!(
        q_vs_f >= 0.99,
        "{path}: quantized vs float agreement {q_vs_f}"
    );
    let acc_float = agreement(&float, &truth);
    let acc_enc = agreement(&encrypted, &truth);
    let one_sample = 1.0 / truth.len() as f64;
    assert!(
        (acc_float - acc_enc).abs() <= one_sample.max(0.01) + 1e-12,
        "{path}: encrypted accuracy {acc_enc} vs float {acc_float}"
    );
}

#[test]
fn breast_cancer_whole_test_split() {
    assert_dataset("data/breast_cancer.csv");
}

#[test]
fn digits_whole_test_split() {
    assert_dataset("data/digits.csv");
}

#[test]
fn iris_whole_test_split() {
    assert_dataset("data/iris.csv");
}

#[test]
fn batch_inference_equals_one_at_a_time() {
    let split = load_csv("data/digits.csv").unwrap().split(0.2, 42).unwrap();
    let fitted = train::fit_logistic(&split).unwrap();
    let model = compile(&fitted, &split, Quantization::default()).unwrap();
    let (client, server) = model.keygen().unwrap();
    let inputs: Vec<_> = split
        .test_rows()
        .iter()
        .take(64)
        .map(|r| client.encrypt(r).unwrap())
        .collect();
    let batch = server.infer_batch(&inputs);
    for (ct, out) in inputs.iter().zip(batch) {
        let single = server.infer(ct).unwrap();
        assert_eq!(
            client.decrypt_scores(&out.unwrap()).unwrap(),
            client.decrypt_scores(&single).unwrap()
        );
    }
}

/// A regression CSV with a known linear relation plus noise, written for the test.
fn regression_csv() -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("fhe_ml_regression_{}.csv", std::process::id()));
    let mut text = String::from("a,b,c,d,target\n");
    let mut state = 12345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for _ in 0..300 {
        let x: Vec<f64> = (0..4).map(|_| next() * 10.0 - 5.0).collect();
        let y = 3.0 * x[0] - 2.0 * x[1] + 0.5 * x[2] + 7.0 + (next() - 0.5) * 0.2;
        text += &format!("{},{},{},{},{y}\n", x[0], x[1], x[2], x[3]);
    }
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn linear_regression_whole_test_split() {
    let path = regression_csv();
    let split = load_csv(&path).unwrap().split_regression(0.2, 42).unwrap();
    let _ = std::fs::remove_file(&path);
    let fitted = train::fit_linear(&split).unwrap();
    let model = compile(&fitted, &split, Quantization::default()).unwrap();
    let (client, server) = model.keygen().unwrap();
    let truth = split.test.targets().to_vec();
    for (row, y) in split.test_rows().iter().zip(truth) {
        let out = server.infer(&client.encrypt(row).unwrap()).unwrap();
        assert_eq!(
            client.decrypt_scores(&out).unwrap(),
            model.simulate(row).unwrap()
        );
        let value = client.decrypt(&out).unwrap().value().unwrap();
        // 8-bit quantization of a ±20 range: within a few tenths of the truth.
        assert!((value - y).abs() < 0.6, "predicted {value}, truth {y}");
    }
}
