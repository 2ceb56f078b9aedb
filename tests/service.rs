//! The inference service over loopback: remote predictions against local ones on whole test
//! splits, models that need evaluation keys, the bad-request suite (every answer a 4xx with a
//! JSON error, the service still healthy afterwards) and key eviction. The load test is in
//! `tests/security.rs`, plain and through TLS and authentication.

use fhe_ml::client::Client;
use fhe_ml::data::load_csv;
use fhe_ml::eval::{compile_model, service_name, EvalConfig, ModelKind, Source};
use fhe_ml::fhe::label::top_labels;
use fhe_ml::fhe::wire::{seal, Kind};
use fhe_ml::fhe::OutputMode;
use fhe_ml::model::CompiledModel;
use fhe_ml::remote::RemoteServer;
use fhe_ml::service::{Background, ModelBundle, ServiceConfig};

fn model(path: &str, kind: ModelKind) -> (String, CompiledModel, Vec<Vec<f64>>) {
    let table = load_csv(path).unwrap();
    let config = EvalConfig::new(Source::File(path.into()), kind);
    let model = compile_model(&config, &table).unwrap();
    let split = table.split(0.2, 42).unwrap();
    (
        service_name(&table.name, kind, OutputMode::Scores),
        model,
        split.test_rows(),
    )
}

fn start(models: &[(String, CompiledModel)], config: ServiceConfig) -> Background {
    let bundles = models
        .iter()
        .map(|(name, m)| ModelBundle::new(name, m))
        .collect();
    Background::start(bundles, config, "127.0.0.1:0").unwrap()
}

/// The error of a request the service must refuse, checked for its HTTP status and the
/// variant its JSON names.
fn refused_with(result: fhe_ml::Result<Vec<u8>>, status: u16, variant: &str) -> String {
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains(&format!(": {status} ")) && err.contains(&format!("({variant})")),
        "expected {status} ({variant}): {err}"
    );
    err
}

#[test]
fn remote_linear_models_equal_local_ones_on_whole_test_splits() {
    let models = [
        model("data/breast_cancer.csv", ModelKind::Logistic),
        model("data/digits.csv", ModelKind::Logistic),
    ];
    let service = start(
        &models
            .iter()
            .map(|(n, m, _)| (n.clone(), m.clone()))
            .collect::<Vec<_>>(),
        ServiceConfig::default(),
    );
    let remote = RemoteServer::new(&service.url()).unwrap();
    assert_eq!(remote.models().unwrap().len(), 2);
    for (name, local, rows) in &models {
        let spec = remote.client_spec(name).unwrap();
        assert_eq!(
            spec,
            local.client_spec(),
            "{name}: the spec crosses the wire intact"
        );
        let client = Client::new(spec).unwrap();
        let inputs: Vec<_> = rows.iter().map(|r| client.encrypt(r).unwrap()).collect();
        for (row, input) in rows.iter().zip(&inputs) {
            let out = remote.predict(name, input).unwrap();
            assert_eq!(
                client.decrypt_scores(&out).unwrap(),
                local.simulate(row).unwrap()
            );
        }
        let batch = remote.predict_batch(name, &inputs).unwrap();
        for (row, out) in rows.iter().zip(&batch) {
            assert_eq!(
                client.decrypt_scores(out).unwrap(),
                local.simulate(row).unwrap()
            );
        }
    }
    service.stop().unwrap();
}

#[test]
fn bootstrapping_models_need_their_clients_key() {
    let (name, local, rows) = model("data/breast_cancer.csv", ModelKind::Tree);
    let service = start(&[(name.clone(), local.clone())], ServiceConfig::default());
    let remote = RemoteServer::new(&service.url()).unwrap();
    let client = Client::new(remote.client_spec(&name).unwrap()).unwrap();
    let input = client.encrypt(&rows[0]).unwrap();
    // Before the key is uploaded: a clear 409 (the request names a key the service lacks).
    let err = refused_with(
        remote.post_raw(
            &format!("/v1/models/{name}/predict"),
            &input.to_bytes().unwrap(),
        ),
        409,
        "UnknownKey",
    );
    assert!(err.contains("unknown evaluation key"), "{err}");
    let id = remote
        .upload_key(&client.evaluation_key().unwrap())
        .unwrap();
    assert_eq!(id.len(), 32);
    for row in rows.iter().take(12) {
        let out = remote
            .predict(&name, &client.encrypt(row).unwrap())
            .unwrap();
        assert_eq!(
            client.decrypt_scores(&out).unwrap(),
            local.simulate(row).unwrap()
        );
    }
    assert_eq!(remote.health().unwrap().keys, 1);
    service.stop().unwrap();
}

/// A label-mode model: its info says so, it needs the client's key, and it returns the clear
/// model's label and no scores; a scores client of the same model cannot read its results.
#[test]
fn label_models_return_only_the_label() {
    let (name, scores, rows) = model("data/breast_cancer.csv", ModelKind::Logistic);
    let label = scores.clone().with_output(OutputMode::Label).unwrap();
    let label_name = format!("{name}-label");
    let service = start(
        &[
            (name.clone(), scores.clone()),
            (label_name.clone(), label.clone()),
        ],
        ServiceConfig::default(),
    );
    let remote = RemoteServer::new(&service.url()).unwrap();
    let info = remote.model(&label_name).unwrap();
    assert_eq!(info.output_mode, "label");
    assert!(info.needs_evaluation_key);
    assert_eq!(info.bootstraps_per_inference, label.bootstraps());
    assert_eq!(remote.model(&name).unwrap().output_mode, "scores");
    let client = Client::new(remote.client_spec(&label_name).unwrap()).unwrap();
    remote
        .upload_key(&client.evaluation_key().unwrap())
        .unwrap();
    let inputs: Vec<_> = rows
        .iter()
        .take(16)
        .map(|r| client.encrypt(r).unwrap())
        .collect();
    let outputs = remote.predict_batch(&label_name, &inputs).unwrap();
    for (row, out) in rows.iter().zip(&outputs) {
        let got = client.decrypt(out).unwrap();
        assert_eq!(
            got.class_index(),
            label.predict_simulated(row).unwrap().class_index()
        );
        assert!(client.decrypt_scores(out).is_err());
    }
    // The label model's ciphertexts are refused by the scores model (another model id).
    let err = refused_with(
        remote.post_raw(
            &format!("/v1/models/{name}/predict"),
            &inputs[0].to_bytes().unwrap(),
        ),
        409,
        "ModelMismatch",
    );
    assert!(err.contains("another model"), "{err}");
    service.stop().unwrap();
}

/// A top-3 model through the service: its mode travels in the model info and the client spec,
/// and its results decrypt to the clear model's three best classes, in order.
#[test]
fn top3_models_return_ranked_labels() {
    let (name, scores, rows) = model("data/digits.csv", ModelKind::Logistic);
    let top3 = scores.with_output(OutputMode::TopK(3)).unwrap();
    let name = format!("{name}-top3");
    let service = start(&[(name.clone(), top3.clone())], ServiceConfig::default());
    let remote = RemoteServer::new(&service.url()).unwrap();
    let info = remote.model(&name).unwrap();
    assert_eq!(info.output_mode, "top-3");
    assert_eq!(info.bootstraps_per_inference, top3.bootstraps());
    let client = Client::new(remote.client_spec(&name).unwrap()).unwrap();
    remote
        .upload_key(&client.evaluation_key().unwrap())
        .unwrap();
    for row in rows.iter().take(2) {
        let out = remote
            .predict(&name, &client.encrypt(row).unwrap())
            .unwrap();
        let clear = top_labels(&top3.simulate_scores(row).unwrap(), 3);
        assert_eq!(client.decrypt_labels(&out).unwrap(), clear);
    }
    service.stop().unwrap();
}

#[test]
fn least_recently_used_keys_are_evicted() {
    let (name, local, rows) = model("data/breast_cancer.csv", ModelKind::Tree);
    let service = start(
        &[(name.clone(), local)],
        ServiceConfig {
            // One key blob (about 29 MiB) in the store, one expanded key in the cache.
            key_store_mib: 40,
            key_cache_mib: 150,
            ..ServiceConfig::default()
        },
    );
    let remote = RemoteServer::new(&service.url()).unwrap();
    let spec = remote.client_spec(&name).unwrap();
    let (a, b) = (
        Client::new(spec.clone()).unwrap(),
        Client::new(spec).unwrap(),
    );
    remote.upload_key(&a.evaluation_key().unwrap()).unwrap();
    remote.upload_key(&b.evaluation_key().unwrap()).unwrap();
    assert!(remote.predict(&name, &b.encrypt(&rows[0]).unwrap()).is_ok());
    let err = remote
        .predict(&name, &a.encrypt(&rows[0]).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown evaluation key"), "{err}");
    assert_eq!(remote.health().unwrap().keys, 1);
}

#[test]
fn bad_requests_get_a_4xx_with_a_json_error_and_the_service_keeps_serving() {
    let (bc, bc_model, bc_rows) = model("data/breast_cancer.csv", ModelKind::Logistic);
    let (iris, iris_model, _) = model("data/iris.csv", ModelKind::Logistic);
    let service = start(
        &[
            (bc.clone(), bc_model.clone()),
            (iris.clone(), iris_model.clone()),
        ],
        ServiceConfig {
            max_batch: 16,
            ..ServiceConfig::default()
        },
    );
    let remote = RemoteServer::new(&service.url()).unwrap();
    let client = Client::new(bc_model.client_spec()).unwrap();
    let good = client.encrypt(&bc_rows[0]).unwrap().to_bytes().unwrap();
    let predict = format!("/v1/models/{bc}/predict");
    // Truncated, corrupted, garbage, empty, oversized.
    refused_with(
        remote.post_raw(&predict, &good[..good.len() - 3]),
        400,
        "Wire",
    );
    let mut corrupted = good.clone();
    corrupted[good.len() / 2] ^= 4;
    refused_with(remote.post_raw(&predict, &corrupted), 400, "Wire");
    refused_with(
        remote.post_raw(&predict, b"certainly not a ciphertext"),
        400,
        "Wire",
    );
    refused_with(remote.post_raw(&predict, b""), 400, "Wire");
    // Oversized: the service answers 413 from the declared length without reading the body,
    // and closes the connection, so a client still sending may only see the connection go.
    let err = remote
        .post_raw(&predict, &vec![7u8; 3 << 20])
        .unwrap_err()
        .to_string();
    assert!(
        ["413", "Broken pipe", "Peer disconnected", "reset"]
            .iter()
            .any(|m| err.contains(m)),
        "{err}"
    );
    // A ciphertext for another model (a different feature count).
    let other = Client::new(iris_model.client_spec()).unwrap();
    let iris_ct = other
        .encrypt(&[5.0, 3.0, 1.5, 0.2])
        .unwrap()
        .to_bytes()
        .unwrap();
    let err = refused_with(remote.post_raw(&predict, &iris_ct), 409, "ModelMismatch");
    assert!(err.contains("another model"), "{err}");
    // Unknown model, unknown endpoint.
    refused_with(
        remote.post_raw("/v1/models/no-such-model/predict", &good),
        404,
        "UnknownModel",
    );
    refused_with(remote.post_raw("/v1/nothing", &good), 404, "NotFound");
    // A secret key is refused wherever it is offered.
    let secret = client.export_secret_key().unwrap();
    let err = refused_with(remote.post_raw("/v1/keys", &secret), 400, "WrongKind");
    assert!(err.contains("secret key"), "{err}");
    refused_with(remote.post_raw(&predict, &secret), 400, "WrongKind");
    // Batches: empty, too large, mixed with another model's rows, garbage.
    let one = client.encrypt(&bc_rows[1]).unwrap();
    let batch =
        |inputs: &[fhe_ml::protocol::EncryptedInput]| seal(Kind::InputBatch, &inputs).unwrap();
    let batch_path = format!("/v1/models/{bc}/predict-batch");
    refused_with(remote.post_raw(&batch_path, &batch(&[])), 400, "Input");
    refused_with(
        remote.post_raw(&batch_path, &batch(&vec![one.clone(); 17])),
        413,
        "TooLarge",
    );
    let iris_input = other.encrypt(&[5.0, 3.0, 1.5, 0.2]).unwrap();
    refused_with(
        remote.post_raw(&batch_path, &batch(&[one.clone(), iris_input])),
        409,
        "ModelMismatch",
    );
    refused_with(remote.post_raw(&batch_path, &good), 400, "WrongKind");
    // Still healthy, still right.
    assert_eq!(remote.health().unwrap().status, "ok");
    let out = remote.predict(&bc, &one).unwrap();
    assert_eq!(
        client.decrypt_scores(&out).unwrap(),
        bc_model.simulate(&bc_rows[1]).unwrap()
    );
}
