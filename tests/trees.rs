//! Decision trees and forests on ciphertexts: the compiled program against the quantized
//! forest it comes from, and the encrypted run against the program's clear twin, on whole
//! test splits (seeded clients, so runs repeat exactly).

use fhe_ml::client::Client;
use fhe_ml::compiler::compile_forest;
use fhe_ml::data::{load_csv, Split};
use fhe_ml::fhe::EvaluationKey;
use fhe_ml::model::CompiledModel;
use fhe_ml::prelude::*;
use fhe_ml::train::trees::{fit_forest, ForestConfig, TrainedForest};

fn trained(path: &str, config: &ForestConfig) -> (Split<usize>, TrainedForest, CompiledModel) {
    let split = load_csv(path).unwrap().split(0.2, 42).unwrap();
    let trained = fit_forest(&split, config).unwrap();
    let model = compile_forest(&trained, &split).unwrap();
    (split, trained, model)
}

fn accuracy(a: &[usize], b: &[usize]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

/// Encrypts every test row, checks every decrypted score equals `simulate`'s, and returns the
/// encrypted labels.
fn encrypted_labels(split: &Split<usize>, model: &CompiledModel, seed: u64) -> Vec<usize> {
    let client = Client::new_seeded(model.client_spec(), seed).unwrap();
    let key =
        EvaluationKey::from_bytes(&client.evaluation_key().unwrap().to_bytes().unwrap()).unwrap();
    let server = Server::with_evaluation_key(model.server_model(), &key).unwrap();
    split
        .test_rows()
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let out = server.infer(&client.encrypt(row).unwrap()).unwrap();
            let scores = client.decrypt_scores(&out).unwrap();
            assert_eq!(scores, model.simulate(row).unwrap(), "row {i}");
            model
                .decoder()
                .decode(&scores)
                .unwrap()
                .class_index()
                .unwrap()
        })
        .collect()
}

#[test]
fn compiled_programs_decide_as_the_quantized_forests() {
    for (path, config) in [
        ("data/breast_cancer.csv", ForestConfig::default()),
        ("data/breast_cancer.csv", ForestConfig::forest()),
        ("data/iris.csv", ForestConfig::forest()),
        (
            "data/digits.csv",
            ForestConfig {
                depth: 6,
                ..ForestConfig::default()
            },
        ),
    ] {
        let (split, trained, model) = trained(path, &config);
        let rows = split.test_rows();
        let twin: Vec<usize> = rows
            .iter()
            .map(|r| model.predict_simulated(r).unwrap().class_index().unwrap())
            .collect();
        assert_eq!(twin, trained.predict_quantized(&rows), "{path} {config:?}");
        // Votes, not just labels: the program's scores are the forest's vote counts.
        for r in rows.iter().take(20) {
            let votes: Vec<i64> = trained
                .quantized
                .votes(&trained.quantize(r))
                .iter()
                .map(|&v| v as i64)
                .collect();
            assert_eq!(model.simulate(r).unwrap(), votes, "{path}");
        }
    }
}

#[test]
fn breast_cancer_tree_encrypted_equals_its_twin() {
    let (split, trained, model) = trained("data/breast_cancer.csv", &ForestConfig::default());
    let encrypted = encrypted_labels(&split, &model, 5);
    let truth = split.test.targets().to_vec();
    let plain = trained.predict_plain(&split.test_rows());
    let (acc_enc, acc_plain) = (accuracy(&encrypted, &truth), accuracy(&plain, &truth));
    assert!(
        acc_plain - acc_enc <= 0.02 + 1e-9,
        "encrypted {acc_enc} vs float tree {acc_plain}"
    );
    // Within tfhe's published failure probability: far fewer bootstraps than splits + leaves.
    assert!(model.program().bootstraps() <= 2 * trained.quantized.splits());
}

#[test]
fn breast_cancer_forest_encrypted_equals_its_twin() {
    let (split, trained, model) = trained("data/breast_cancer.csv", &ForestConfig::forest());
    let encrypted = encrypted_labels(&split, &model, 6);
    let truth = split.test.targets().to_vec();
    let plain = trained.predict_plain(&split.test_rows());
    assert!(accuracy(&plain, &truth) - accuracy(&encrypted, &truth) <= 0.02 + 1e-9);
}

#[test]
fn iris_multiclass_forest_encrypted_equals_its_twin() {
    let config = ForestConfig {
        trees: 3,
        depth: 3,
        ..ForestConfig::default()
    };
    let (split, _, model) = trained("data/iris.csv", &config);
    encrypted_labels(&split, &model, 7);
}

#[test]
fn tree_configurations_are_checked() {
    let split = load_csv("data/iris.csv").unwrap().split(0.2, 42).unwrap();
    for bad in [
        ForestConfig {
            depth: 0,
            ..ForestConfig::default()
        },
        ForestConfig {
            depth: 8,
            ..ForestConfig::default()
        },
        ForestConfig {
            input_bits: 6,
            ..ForestConfig::default()
        },
        ForestConfig {
            trees: 0,
            ..ForestConfig::default()
        },
        ForestConfig {
            feature_fraction: 0.0,
            ..ForestConfig::default()
        },
    ] {
        let err = fit_forest(&split, &bad).unwrap_err().to_string();
        assert!(err.starts_with("training failed"), "{err}");
    }
}

/// Label mode on the breast-cancer tree: exact like its scores, on the whole test split.
#[test]
fn breast_cancer_tree_in_label_mode_equals_its_twin() {
    let (split, _, model) = trained("data/breast_cancer.csv", &ForestConfig::default());
    let model = model.with_output(fhe_ml::fhe::OutputMode::Label).unwrap();
    let client = Client::new_seeded(model.client_spec(), 5).unwrap();
    let server =
        Server::with_evaluation_key(model.server_model(), &client.evaluation_key().unwrap())
            .unwrap();
    let rows = split.test_rows();
    let cts: Vec<EncryptedInput> = rows.iter().map(|r| client.encrypt(r).unwrap()).collect();
    let outs = server.infer_batch(&cts);
    for (i, (row, out)) in rows.iter().zip(outs).enumerate() {
        let got = client.decrypt(&out.unwrap()).unwrap();
        assert_eq!(
            got.class_index(),
            model.predict_simulated(row).unwrap().class_index(),
            "row {i}"
        );
    }
}
