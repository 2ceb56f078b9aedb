//! Every error variant, triggered where it belongs, with the HTTP status the service gives it
//! (the service's own answers are checked in tests/service.rs).

use fhe_ml::fhe::wire::{seal, Kind};
use fhe_ml::prelude::*;
use fhe_ml::service::ModelBundle;
use fhe_ml::Error;

fn breast_cancer() -> Split<usize> {
    fhe_ml::data::parse_csv_str(fhe_ml::data::BREAST_CANCER_CSV, "bc")
        .unwrap()
        .split(0.2, 42)
        .unwrap()
}

/// Checks the variant (by its name) and its status.
fn is(err: Error, variant: &str, status: u16) -> Error {
    assert_eq!(err.variant(), variant, "{err}");
    assert_eq!(err.http_status(), status, "{err}");
    assert!(!err.to_string().is_empty() && !err.to_string().contains('\n'));
    err
}

#[test]
fn data_training_and_compile_errors() {
    is(
        fhe_ml::data::load_csv("data/no_such_file.csv").unwrap_err(),
        "Io",
        500,
    );
    is(
        fhe_ml::data::parse_csv_str("a,b\n1,2\n", "t").unwrap_err(),
        "Csv",
        400,
    );
    is(
        fhe_ml::data::parse_csv_str("a,target\n1,1\n2,1\n3,1\n", "t")
            .unwrap()
            .split(0.2, 42)
            .unwrap_err(),
        "Data",
        422,
    );
    let data = breast_cancer();
    is(
        MlpParams::default().epochs(0).fit(&data).unwrap_err(),
        "Training",
        422,
    );
    let regression =
        fhe_ml::data::parse_csv_str("a,target\n1,1.5\n2,2.5\n3,3.5\n4,4.5\n5,5.5\n", "t")
            .unwrap()
            .split_regression(0.2, 42)
            .unwrap();
    let fitted = LinearParams.fit(&regression).unwrap();
    is(
        compile(&fitted, &regression, OutputMode::Label).unwrap_err(),
        "Compile",
        422,
    );
}

#[test]
fn input_shape_and_ciphertext_errors() {
    let data = breast_cancer();
    let fitted = LogisticParams::default().fit(&data).unwrap();
    let model = compile(&fitted, &data, Options::default()).unwrap();
    let (client, server) = model.keygen().unwrap();
    let mut row = data.test_rows()[0].clone();
    let err = is(client.encrypt(&row[..29]).unwrap_err(), "Shape", 400);
    let Error::Shape {
        expected, found, ..
    } = err
    else {
        unreachable!()
    };
    assert_eq!((expected, found), (30, 29));
    row[3] = f64::NAN;
    is(client.encrypt(&row).unwrap_err(), "Input", 400);
    row[3] = 1.0;
    // A ciphertext for another model: 409.
    let other = compile(&fitted, &data, Options::bits(6)).unwrap();
    let (other_client, _) = other.keygen().unwrap();
    is(
        server
            .infer(&other_client.encrypt(&row).unwrap())
            .unwrap_err(),
        "ModelMismatch",
        409,
    );
    // Corrupted bytes, a blob of another kind, a header claiming more than the limit.
    let mut blob = client.encrypt(&row).unwrap().to_bytes().unwrap();
    let last = blob.len() - 40;
    blob[last] ^= 1;
    is(server.infer_bytes(&blob).unwrap_err(), "Wire", 400);
    let secret = client.export_secret_key().unwrap();
    is(server.infer_bytes(&secret).unwrap_err(), "WrongKind", 400);
    let mut huge = client.encrypt(&row).unwrap().to_bytes().unwrap();
    huge[7..11].copy_from_slice(&u32::MAX.to_le_bytes());
    is(server.infer_bytes(&huge).unwrap_err(), "TooLarge", 413);
}

#[test]
fn model_file_service_and_remote_errors() {
    is(
        ModelBundle::from_bytes(b"not a model file").unwrap_err(),
        "ModelFile",
        400,
    );
    // A spec blob where a model file belongs is a model-file error too.
    let data = breast_cancer();
    let fitted = LogisticParams::default().fit(&data).unwrap();
    let model = compile(&fitted, &data, Options::default()).unwrap();
    let spec = model.client_spec().to_bytes().unwrap();
    is(
        ModelBundle::from_bytes(&spec).unwrap_err(),
        "ModelFile",
        400,
    );
    // Through a running service: an unknown model and an unknown key, as the client sees them
    // (`Remote`, naming the service's status and variant).
    let tree = compile(
        &ForestParams::tree().fit(&data).unwrap(),
        &data,
        Options::default(),
    )
    .unwrap();
    let service = fhe_ml::service::Background::start(
        vec![ModelBundle::new("bc-tree", &tree)],
        fhe_ml::service::ServiceConfig::default(),
        "127.0.0.1:0",
    )
    .unwrap();
    let remote = fhe_ml::remote::RemoteServer::new(&service.url()).unwrap();
    let err = is(remote.client_spec("nope").unwrap_err(), "Remote", 502);
    assert!(
        err.to_string().contains("404 Not Found (UnknownModel)"),
        "{err}"
    );
    let client = Client::new(remote.client_spec("bc-tree").unwrap()).unwrap();
    let input = client.encrypt(&data.test_rows()[0]).unwrap();
    let err = remote.predict("bc-tree", &input).unwrap_err().to_string();
    assert!(err.contains("409 Conflict (UnknownKey)"), "{err}");
    let batch = seal(Kind::InputBatch, &vec![input; 2000]).unwrap();
    let err = remote
        .post_raw("/v1/models/bc-tree/predict-batch", &batch)
        .unwrap_err()
        .to_string();
    assert!(err.contains("413 Payload Too Large (TooLarge)"), "{err}");
    service.stop().unwrap();
    // Nothing listening.
    let closed = fhe_ml::remote::RemoteServer::new("http://127.0.0.1:9").unwrap();
    is(closed.health().unwrap_err(), "Remote", 502);
}

/// The security variants map to 401, 403 and 429; `tests/security.rs` triggers each through a
/// running service (no token, another tenant's key, a spent budget or rate).
#[test]
fn security_variants_map_to_their_statuses() {
    is(
        Error::Unauthorized("unknown token".into()),
        "Unauthorized",
        401,
    );
    is(
        Error::Forbidden("another tenant's key".into()),
        "Forbidden",
        403,
    );
    let err = is(
        Error::RateLimited {
            what: "request rate 2/min".into(),
            retry_after_s: 30,
        },
        "RateLimited",
        429,
    );
    assert!(err.to_string().contains("30 s"), "{err}");
}

/// The variants no input can trigger (a failing worker thread or runtime, a service shutting
/// down) still map to their statuses.
#[test]
fn internal_variants_map_to_5xx() {
    is(Error::Other("worker failed".into()), "Other", 500);
    is(
        Error::Unavailable("shutting down".into()),
        "Unavailable",
        503,
    );
    is(
        Error::UnknownModel { name: "x".into() },
        "UnknownModel",
        404,
    );
    is(
        Error::UnknownKey {
            key_id: "ab".into(),
        },
        "UnknownKey",
        409,
    );
}
