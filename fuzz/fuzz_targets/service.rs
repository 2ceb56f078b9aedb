//! The service's request bodies, paths and tokens, through the real router (no network), with
//! and without tenants: every answer must be an HTTP response, and a client can cause only
//! 4xx. Bodies are sealed in a valid envelope half of the time, so the handlers' decoders and
//! checks (model ids, key ids, batch shapes, quotas) are reached, not only the digest.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use fhe_ml::auth::Tenants;
use fhe_ml::fhe::wire::{seal_payload, Kind};
use fhe_ml::service::{router, ModelBundle, ServiceConfig};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

/// One token of the tenants file below; the fuzzer may find it in the seeds.
const TOKEN: &str = "fhe_fuzz";

struct Fixture {
    runtime: tokio::runtime::Runtime,
    open: Router,
    guarded: Router,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let table = fhe_ml::data::parse_csv_str(fhe_ml::data::BREAST_CANCER_CSV, "bc").unwrap();
        let split = table.split(0.2, 42).unwrap();
        let fitted = fhe_ml::train::fit_logistic(&split).unwrap();
        let model = fhe_ml::compile(&fitted, &split, fhe_ml::Options::default()).unwrap();
        let label = model
            .clone()
            .with_output(fhe_ml::fhe::OutputMode::Label)
            .unwrap();
        let bundles = vec![
            ModelBundle::new("bc", &model),
            ModelBundle::new("bc-label", &label),
        ];
        let hash = blake3::hash(TOKEN.as_bytes()).to_hex();
        let tenants =
            Tenants::parse(&format!("fuzz blake3:{hash} rate=1000000/s budget=1000000/day")).unwrap();
        let guarded = ServiceConfig {
            tenants: Some(Arc::new(tenants)),
            ..ServiceConfig::default()
        };
        Fixture {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            open: router(bundles.clone(), ServiceConfig::default()).unwrap(),
            guarded: router(bundles, guarded).unwrap(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let (path, kind) = match pick % 6 {
        0 => ("/v1/keys".to_string(), Kind::EvaluationKey),
        1 => ("/v1/models/bc/predict".to_string(), Kind::EncryptedInput),
        2 => ("/v1/models/bc/predict-batch".to_string(), Kind::InputBatch),
        3 => ("/v1/models/bc-label/predict".to_string(), Kind::EncryptedInput),
        4 => ("/v1/models/bc-label/predict-batch".to_string(), Kind::InputBatch),
        _ => (
            format!("/v1/models/{}", String::from_utf8_lossy(&body[..body.len().min(16)])),
            Kind::EncryptedInput,
        ),
    };
    let body = if pick & 0x40 != 0 {
        seal_payload(kind, body)
    } else {
        body.to_vec()
    };
    let fixture = fixture();
    let guarded = pick & 0x80 != 0;
    let mut request = Request::post(path);
    if guarded && pick & 0x20 != 0 {
        request = request.header("authorization", format!("Bearer {TOKEN}"));
    }
    let Ok(request) = request.body(Body::from(body)) else {
        return;
    };
    let app = if guarded { &fixture.guarded } else { &fixture.open };
    let response = fixture.runtime.block_on(app.clone().oneshot(request)).unwrap();
    let status = response.status().as_u16();
    assert!(
        (200..500).contains(&status),
        "status {status} for a client's request"
    );
});
