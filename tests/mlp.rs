//! Neural networks on ciphertexts: a trained MLP, compiled to linear/lookup/linear, against its
//! clear twin on whole test splits, step by step; its noise model against what encryption does;
//! and its evaluation key's checks. Clients are seeded, so every run repeats exactly.

use fhe_ml::client::Client;
use fhe_ml::compiler::compile_mlp;
use fhe_ml::data::{load_csv, Split};
use fhe_ml::fhe::EvaluationKey;
use fhe_ml::model::CompiledModel;
use fhe_ml::prelude::*;
use fhe_ml::train::mlp::{fit_mlp, Mlp, MlpConfig};

fn trained(path: &str) -> (Split<usize>, Mlp, CompiledModel) {
    let split = load_csv(path).unwrap().split(0.2, 42).unwrap();
    let mlp = fit_mlp(&split, &MlpConfig::default()).unwrap();
    let model = compile_mlp(&mlp, &split).unwrap();
    (split, mlp, model)
}

/// A seeded client, and a server holding its evaluation key as read from the wire.
fn keys(model: &CompiledModel, seed: u64) -> (Client, Server, usize) {
    let client = Client::new_seeded(model.client_spec(), seed).unwrap();
    let blob = client.evaluation_key().unwrap().to_bytes().unwrap();
    let server = Server::with_evaluation_key(
        model.server_model(),
        &EvaluationKey::from_bytes(&blob).unwrap(),
    )
    .unwrap();
    (client, server, blob.len())
}

fn agreement(a: &[usize], b: &[usize]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

#[test]
fn digits_mlp_against_its_clear_twin_on_the_whole_test_split() {
    let (split, mlp, model) = trained("data/digits.csv");
    // Trained 64-32-10, a quarter of the hidden neurons pruned: one bootstrap per neuron kept.
    assert_eq!(mlp.config.hidden, [24]);
    assert_eq!(
        model.program().bootstraps(),
        24,
        "64-32-10 pruned to 24: one bootstrap per hidden neuron"
    );
    let (client, server, key_bytes) = keys(&model, 7);
    assert!(key_bytes <= 64 << 20, "evaluation key {key_bytes} bytes");
    let noise = model.noise().unwrap();
    let rows = split.test_rows();
    let truth = split.test.targets().to_vec();
    let float = mlp.predict_float(&rows).unwrap();
    let (mut quantized, mut encrypted) = (Vec::new(), Vec::new());
    let (mut mismatches, mut expected) = (0usize, 0.0);
    for (i, row) in rows.iter().enumerate() {
        let x = model.quantize(row).unwrap().values;
        let (out, trace) = server.infer_traced(&client.encrypt(row).unwrap()).unwrap();
        // Step 0 is leveled: exact, whatever the noise.
        let (delta, cts) = &trace[0];
        let phases = client.decrypt_phases(cts).unwrap();
        let z: Vec<i64> = phases
            .iter()
            .map(|&p| ((p as i64 as f64) / *delta as f64).round() as i64)
            .collect();
        assert_eq!(z, model.program().simulate_until(&x, 1).unwrap(), "row {i}");
        // Step 1 bootstraps: its activations may differ where the noise crosses a step.
        let (delta, cts) = &trace[1];
        let phases = client.decrypt_phases(cts).unwrap();
        let clear = model.program().simulate_until(&x, 2).unwrap();
        let hidden_exact = phases
            .iter()
            .zip(&clear)
            .filter(|&(&p, &c)| ((p as i64 as f64) / *delta as f64).round() as i64 != c)
            .count();
        mismatches += hidden_exact;
        expected += model.expected_lookup_mismatches(row).unwrap()[0];
        // With every activation as in the clear, scores differ only by the output noise.
        let scores = client.decrypt_scores(&out).unwrap();
        let twin = model.simulate(row).unwrap();
        if hidden_exact == 0 {
            let worst = scores
                .iter()
                .zip(&twin)
                .map(|(a, b)| (a - b).abs())
                .max()
                .unwrap();
            assert!(
                worst as f64 <= 7.0 * noise.score_sigma + 1.0,
                "row {i}: scores {scores:?} vs {twin:?} (sigma {})",
                noise.score_sigma
            );
        }
        let want = model
            .decoder()
            .decode(&twin)
            .unwrap()
            .class_index()
            .unwrap();
        let got = model
            .decoder()
            .decode(&scores)
            .unwrap()
            .class_index()
            .unwrap();
        // A label may differ only where an activation crossed a step, or where the twin's
        // top two scores are closer than the output noise can move them.
        if got != want && hidden_exact == 0 {
            let mut sorted = twin.clone();
            sorted.sort_unstable_by(|a, b| b.cmp(a));
            let gap = (sorted[0] - sorted[1]) as f64;
            assert!(
                gap <= 2.0 * (7.0 * noise.score_sigma + 1.0),
                "row {i}: label {got} vs {want} with every activation exact (gap {gap})"
            );
        }
        quantized.push(want);
        encrypted.push(got);
    }
    // tfhe's noise formulas predict how many lookups cross a step.
    let slack = 4.0 * expected.sqrt() + 0.25 * expected;
    assert!(
        (mismatches as f64 - expected).abs() <= slack,
        "{mismatches} activations differed from the twin, the noise model expects {expected:.1}"
    );
    // The noisy twin predicts how many labels differ; the count is Poisson-like, so allow
    // four standard deviations (a broken lookup changes dozens of labels).
    let differ = encrypted
        .iter()
        .zip(&quantized)
        .filter(|(a, b)| a != b)
        .count();
    let replicas = fhe_ml::eval::noisy_label_agreement(&model, &rows, 40, 11).unwrap();
    let expected_differ =
        rows.len() as f64 * (1.0 - replicas.iter().sum::<f64>() / replicas.len() as f64);
    println!("{differ} labels differ, {expected_differ:.2} expected; {mismatches} activations, {expected:.2} expected");
    assert!(
        differ as f64 <= expected_differ + 4.0 * expected_differ.max(1.0).sqrt(),
        "{differ} labels differ from the twin, the noise model expects {expected_differ:.1}"
    );
    let acc_enc = agreement(&encrypted, &truth);
    let acc_float = agreement(&float, &truth);
    assert!(acc_enc >= 0.95, "encrypted accuracy {acc_enc}");
    assert!(
        acc_float - acc_enc <= 0.015,
        "encrypted {acc_enc} vs float {acc_float}"
    );
}

#[test]
fn noisy_simulation_expects_labels_to_agree() {
    let (split, _, model) = trained("data/digits.csv");
    let replicas = fhe_ml::eval::noisy_label_agreement(&model, &split.test_rows(), 40, 1).unwrap();
    let mean = replicas.iter().sum::<f64>() / replicas.len() as f64;
    assert!(mean >= 0.995, "expected label agreement {mean}");
    // The noise is real: some replica loses a label.
    assert!(replicas.iter().any(|&a| a < 1.0), "{replicas:?}");
}

#[test]
fn breast_cancer_mlp_is_accurate_encrypted() {
    let (split, _, model) = trained("data/breast_cancer.csv");
    let (client, server, _) = keys(&model, 11);
    let rows = split.test_rows();
    let truth = split.test.targets().to_vec();
    let encrypted: Vec<usize> = rows
        .iter()
        .map(|r| {
            let out = server.infer(&client.encrypt(r).unwrap()).unwrap();
            client.decrypt(&out).unwrap().class_index().unwrap()
        })
        .collect();
    let acc = agreement(&encrypted, &truth);
    assert!(acc >= 0.96, "breast cancer encrypted accuracy {acc}");
}

#[test]
fn evaluation_keys_are_checked() {
    let split = load_csv("data/iris.csv").unwrap().split(0.2, 42).unwrap();
    let config = MlpConfig {
        hidden: vec![4],
        epochs: 20,
        ..MlpConfig::default()
    };
    let model = compile_mlp(&fit_mlp(&split, &config).unwrap(), &split).unwrap();
    // A bootstrapping model cannot be served without a key.
    let err = Server::new(model.server_model()).unwrap_err().to_string();
    assert!(err.contains("evaluation key"), "{err}");
    let (client, server, _) = keys(&model, 3);
    let row = split.test_rows()[0].clone();
    assert!(server.infer(&client.encrypt(&row).unwrap()).is_ok());
    // Another client's ciphertexts: refused, not answered with garbage.
    let (other, _, _) = keys(&model, 4);
    let err = server
        .infer(&other.encrypt(&row).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("evaluation key"), "{err}");
    // Corrupted, truncated, mistyped blobs; a secret key offered as an evaluation key.
    let blob = client.evaluation_key().unwrap().to_bytes().unwrap();
    let mut corrupted = blob.clone();
    corrupted[blob.len() / 2] ^= 1;
    assert!(EvaluationKey::from_bytes(&corrupted).is_err());
    assert!(EvaluationKey::from_bytes(&blob[..blob.len() - 9]).is_err());
    let secret = client.export_secret_key().unwrap();
    let err = EvaluationKey::from_bytes(&secret).unwrap_err().to_string();
    assert!(err.contains("secret key"), "{err}");
    // A client keeps one key; seeded clients repeat exactly; different seeds differ.
    let id = |c: &Client| c.evaluation_key().unwrap().id().unwrap();
    assert_eq!(id(&client), id(&client));
    let again = Client::new_seeded(model.client_spec(), 3).unwrap();
    assert_eq!(id(&again), id(&client));
    assert_ne!(id(&again), id(&other));
}

/// Label mode on the digits MLP: the comparison is designed for its noisy scores, and rows
/// whose two best clear scores are far apart (20 units: a lookup landing one level off moves a
/// score by at most 7, its Gaussian noise has σ = 0.55) come back with the clear label.
#[test]
fn digits_mlp_in_label_mode() {
    let (split, _, model) = trained("data/digits.csv");
    let model = model.with_output(fhe_ml::fhe::OutputMode::Label).unwrap();
    let head = model.label_head().expect("label mode");
    assert!(head.levels.len() <= fhe_ml::fhe::label::MAX_LEVELS);
    let (client, server, _) = keys(&model, 11);
    // One count: the program's, label head included.
    assert_eq!(server.bootstraps_per_inference(), model.bootstraps());
    assert_eq!(
        model.bootstraps(),
        model.program().without_head().bootstraps() + head.bootstraps()
    );
    let mut checked = 0;
    for row in split.test_rows() {
        let mut scores = model.simulate_scores(&row).unwrap();
        scores.sort_unstable();
        if scores[scores.len() - 1] - scores[scores.len() - 2] < 20 {
            continue;
        }
        let out = server.infer(&client.encrypt(&row).unwrap()).unwrap();
        assert_eq!(
            client.decrypt(&out).unwrap().class_index(),
            model.predict_simulated(&row).unwrap().class_index()
        );
        checked += 1;
        if checked == 3 {
            break;
        }
    }
    assert_eq!(checked, 3);
}
