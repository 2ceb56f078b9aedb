//! The service's request bodies and paths, through the real router (no network): every
//! answer must be an HTTP response, and a client can cause only 4xx.
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::Request;
use fhe_ml::service::{router, ModelBundle, ServiceConfig};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

fn bundles() -> &'static Vec<ModelBundle> {
    static MODELS: OnceLock<Vec<ModelBundle>> = OnceLock::new();
    MODELS.get_or_init(|| {
        let table = fhe_ml::data::parse_csv_str(fhe_ml::data::BREAST_CANCER_CSV, "bc").unwrap();
        let split = table.split(0.2, 42).unwrap();
        let fitted = fhe_ml::train::fit_logistic(&split).unwrap();
        let model = fhe_ml::compile(&fitted, &split, fhe_ml::Options::default()).unwrap();
        vec![ModelBundle::new("bc", &model)]
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let path = match pick % 5 {
        0 => "/v1/keys".to_string(),
        1 => "/v1/models/bc/predict".to_string(),
        2 => "/v1/models/bc/predict-batch".to_string(),
        3 => "/v1/models/nope/predict".to_string(),
        _ => format!("/v1/models/{}", String::from_utf8_lossy(&body[..body.len().min(16)])),
    };
    let Ok(request) = Request::post(path).body(Body::from(body.to_vec())) else {
        return;
    };
    let app = router(bundles().clone(), ServiceConfig::default()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let response = runtime.block_on(app.oneshot(request)).unwrap();
    let status = response.status().as_u16();
    assert!(
        (200..500).contains(&status),
        "status {status} for a client's request"
    );
});
