//! Service security (issue 18): tokens (401), keys scoped to their tenant (403), quotas (429
//! with Retry-After), TLS round trips against the local twin, plain HTTP refused by a TLS port,
//! metrics, tokens kept out of logs, and the load test through TLS and authentication.

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use fhe_ml::auth::{add_tenant, add_tenant_with_role, parse_budget, parse_rate, Tenants};
use fhe_ml::client::Client;
use fhe_ml::data::load_csv;
use fhe_ml::eval::{compile_model, service_name, EvalConfig, ModelKind, Source};
use fhe_ml::fhe::OutputMode;
use fhe_ml::model::CompiledModel;
use fhe_ml::remote::{RemoteOptions, RemoteServer};
use fhe_ml::service::{Background, ModelBundle, ServiceConfig, TlsPem};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fhe-ml-security-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn logistic(output: OutputMode) -> (String, CompiledModel, Vec<Vec<f64>>) {
    let path = "data/breast_cancer.csv";
    let table = load_csv(path).unwrap();
    let mut config = EvalConfig::new(Source::File(path.into()), ModelKind::Logistic);
    config.output = output;
    let model = compile_model(&config, &table).unwrap();
    let split = table.split(0.2, 42).unwrap();
    (
        service_name(&table.name, ModelKind::Logistic, output),
        model,
        split.test_rows(),
    )
}

/// Tenants `alice` (no quotas), `bob` (no quotas), `carol` (budget 3 rows/hour per model),
/// `dave` (2 requests/min) and `ops` (admin: reads the metrics); their tokens.
fn tenants(dir: &std::path::Path) -> (Arc<Tenants>, [String; 5]) {
    let file = dir.join("tenants");
    let alice = add_tenant(&file, "alice", None, None).unwrap();
    let bob = add_tenant(&file, "bob", None, None).unwrap();
    let carol = add_tenant(&file, "carol", None, Some(parse_budget("3/hour").unwrap())).unwrap();
    let dave = add_tenant(&file, "dave", Some(parse_rate("2/min").unwrap()), None).unwrap();
    let ops = add_tenant_with_role(&file, "ops", None, None, true).unwrap();
    (
        Arc::new(Tenants::load(&file).unwrap()),
        [alice, bob, carol, dave, ops],
    )
}

fn start(models: &[(String, CompiledModel)], config: ServiceConfig) -> Background {
    let bundles = models
        .iter()
        .map(|(name, m)| ModelBundle::new(name, m))
        .collect();
    Background::start(bundles, config, "127.0.0.1:0").unwrap()
}

/// A service for one model, with tenants and otherwise default settings.
fn guarded(name: &str, model: &CompiledModel, tenants: Arc<Tenants>) -> Background {
    start(
        &[(name.to_string(), model.clone())],
        ServiceConfig {
            tenants: Some(tenants),
            ..ServiceConfig::default()
        },
    )
}

fn as_tenant(url: &str, token: &str) -> RemoteServer {
    RemoteServer::connect(
        url,
        &RemoteOptions {
            token: Some(token.to_string()),
            ca_pem: None,
        },
    )
    .unwrap()
}

fn refused<T: std::fmt::Debug>(result: fhe_ml::Result<T>, status: u16, variant: &str) -> String {
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains(&format!(": {status} ")) && err.contains(&format!("({variant})")),
        "expected {status} ({variant}): {err}"
    );
    err
}

/// A CA and a certificate it signed for `localhost` and 127.0.0.1: (CA PEM, leaf chain+key).
fn certificates() -> (Vec<u8>, TlsPem) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "fhe-ml test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf_params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    (
        ca_cert.pem().into_bytes(),
        TlsPem {
            cert: leaf.pem().into_bytes(),
            key: leaf_key.serialize_pem().into_bytes(),
        },
    )
}

#[test]
fn tokens_gate_every_route_but_health() {
    let dir = temp_dir("tokens");
    let (tenants, [alice, ..]) = tenants(&dir);
    let (name, model, rows) = logistic(OutputMode::Scores);
    let service = guarded(&name, &model, tenants);
    let anonymous = RemoteServer::new(&service.url()).unwrap();
    assert_eq!(anonymous.health().unwrap().status, "ok");
    refused(anonymous.models(), 401, "Unauthorized");
    refused(anonymous.client_spec(&name), 401, "Unauthorized");
    let stranger = as_tenant(&service.url(), "fhe_0000");
    refused(stranger.models(), 401, "Unauthorized");
    // Without a token nothing reaches the model, not even a well-formed ciphertext.
    let client = Client::new(model.client_spec()).unwrap();
    let ct = client.encrypt(&rows[0]).unwrap();
    refused(anonymous.predict(&name, &ct), 401, "Unauthorized");
    let raw = ureq::get(&format!("{}/v1/models", service.url()))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    assert_eq!(raw.status(), 401);
    assert_eq!(raw.headers()["www-authenticate"], "Bearer");
    // The scheme is case-insensitive.
    let raw = ureq::get(&format!("{}/v1/models", service.url()))
        .header("authorization", &format!("bearer {alice}"))
        .call()
        .unwrap();
    assert_eq!(raw.status(), 200);
    let remote = as_tenant(&service.url(), &alice);
    assert_eq!(remote.models().unwrap().len(), 1);
    assert!(
        !format!("{remote:?}").contains(&alice),
        "Debug hides the token"
    );
    let out = remote.predict(&name, &ct).unwrap();
    assert_eq!(
        client.decrypt_scores(&out).unwrap(),
        model.simulate(&rows[0]).unwrap()
    );
    service.stop().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn evaluation_keys_belong_to_their_tenant() {
    let dir = temp_dir("keys");
    let (tenants, [alice, bob, ..]) = tenants(&dir);
    let (name, model, rows) = logistic(OutputMode::Label);
    let service = guarded(&name, &model, tenants);
    let (a, b) = (
        as_tenant(&service.url(), &alice),
        as_tenant(&service.url(), &bob),
    );
    let client_a = Client::new_seeded(model.client_spec(), 1).unwrap();
    a.upload_key(&client_a.evaluation_key().unwrap()).unwrap();
    let ct = client_a.encrypt(&rows[0]).unwrap();
    let want = model.predict_simulated(&rows[0]).unwrap().class_index();
    assert_eq!(
        client_a
            .decrypt(&a.predict(&name, &ct).unwrap())
            .unwrap()
            .class_index(),
        want
    );
    // Bob names Alice's key: refused, and Alice's key still serves Alice.
    let err = refused(b.predict(&name, &ct), 403, "Forbidden");
    assert!(err.contains("another tenant"), "{err}");
    refused(
        b.predict_batch(&name, std::slice::from_ref(&ct)),
        403,
        "Forbidden",
    );
    // Bob's own key works for Bob.
    let client_b = Client::new_seeded(model.client_spec(), 2).unwrap();
    b.upload_key(&client_b.evaluation_key().unwrap()).unwrap();
    let out = b
        .predict(&name, &client_b.encrypt(&rows[0]).unwrap())
        .unwrap();
    assert_eq!(client_b.decrypt(&out).unwrap().class_index(), want);
    assert!(a.predict(&name, &ct).is_ok());
    service.stop().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Over the service's key bound, the tenant holding the most keys gives up its least recently
/// used one: Alice's uploads cannot evict Bob's key.
#[test]
fn a_tenant_cannot_evict_another_tenants_key() {
    let dir = temp_dir("evict");
    let (tenants, [alice, bob, ..]) = tenants(&dir);
    let (name, model, rows) = logistic(OutputMode::Label);
    let service = start(
        &[(name.clone(), model.clone())],
        ServiceConfig {
            tenants: Some(tenants),
            // Two keys in the store (about 29 MiB each) and in the cache (about 86 MiB).
            key_store_mib: 70,
            key_cache_mib: 200,
            ..ServiceConfig::default()
        },
    );
    let (a, b) = (
        as_tenant(&service.url(), &alice),
        as_tenant(&service.url(), &bob),
    );
    let client_b = Client::new_seeded(model.client_spec(), 10).unwrap();
    b.upload_key(&client_b.evaluation_key().unwrap()).unwrap();
    let clients_a: Vec<Client> = (11..14)
        .map(|seed| Client::new_seeded(model.client_spec(), seed).unwrap())
        .collect();
    for client in &clients_a {
        a.upload_key(&client.evaluation_key().unwrap()).unwrap();
    }
    let row = &rows[0];
    b.predict(&name, &client_b.encrypt(row).unwrap())
        .expect("Bob's key survives Alice's uploads");
    a.predict(&name, &clients_a[2].encrypt(row).unwrap())
        .expect("Alice's newest key is held");
    refused(
        a.predict(&name, &clients_a[0].encrypt(row).unwrap()),
        409,
        "UnknownKey",
    );
    service.stop().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn quotas_answer_429_with_retry_after() {
    let dir = temp_dir("quotas");
    let (tenants, [alice, _, carol, dave, _]) = tenants(&dir);
    let (name, model, rows) = logistic(OutputMode::Scores);
    let service = guarded(&name, &model, tenants);
    let client = Client::new(model.client_spec()).unwrap();
    let cts: Vec<_> = rows[..4]
        .iter()
        .map(|r| client.encrypt(r).unwrap())
        .collect();
    // Carol's budget is 3 rows per hour for this model: a batch of 2, one row, then nothing.
    let carol_remote = as_tenant(&service.url(), &carol);
    carol_remote.predict_batch(&name, &cts[..2]).unwrap();
    carol_remote.predict(&name, &cts[2]).unwrap();
    let err = refused(carol_remote.predict(&name, &cts[3]), 429, "RateLimited");
    assert!(err.contains("query budget 3/hour"), "{err}");
    refused(
        carol_remote.predict_batch(&name, &cts[..2]),
        429,
        "RateLimited",
    );
    // A batch larger than the whole budget could never pass: 413, not 429.
    refused(
        carol_remote.predict_batch(&name, &cts[..4]),
        413,
        "TooLarge",
    );
    // The budget is per tenant: Alice is not limited.
    let alice_remote = as_tenant(&service.url(), &alice);
    for ct in &cts {
        alice_remote.predict(&name, ct).unwrap();
    }
    // Dave may make 2 requests per minute, whatever they are.
    let dave_remote = as_tenant(&service.url(), &dave);
    dave_remote.models().unwrap();
    dave_remote.predict(&name, &cts[0]).unwrap();
    refused(dave_remote.models(), 429, "RateLimited");
    let raw = ureq::get(&format!("{}/v1/models", service.url()))
        .header("authorization", &format!("Bearer {dave}"))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    assert_eq!(raw.status(), 429);
    let retry: u64 = raw.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    service.stop().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tls_round_trip_equals_the_clear_twin_and_plain_http_is_refused() {
    let dir = temp_dir("tls");
    let (tenants, [alice, ..]) = tenants(&dir);
    let (ca, tls) = certificates();
    let (name, model, rows) = logistic(OutputMode::Scores);
    let service = start(
        &[(name.clone(), model.clone())],
        ServiceConfig {
            tenants: Some(tenants),
            tls: Some(tls),
            ..ServiceConfig::default()
        },
    );
    let url = service.url();
    assert!(url.starts_with("https://"), "{url}");
    let remote = RemoteServer::connect(
        &url,
        &RemoteOptions {
            token: Some(alice.clone()),
            ca_pem: Some(ca.clone()),
        },
    )
    .unwrap();
    let client = Client::new(model.client_spec()).unwrap();
    let cts: Vec<_> = rows.iter().map(|r| client.encrypt(r).unwrap()).collect();
    let outs = remote.predict_batch(&name, &cts).unwrap();
    for (row, out) in rows.iter().zip(&outs) {
        assert_eq!(
            client.decrypt_scores(out).unwrap(),
            model.simulate(row).unwrap()
        );
    }
    // Plain HTTP to the TLS port fails cleanly; so does HTTPS without the CA.
    let plain = as_tenant(&url.replacen("https://", "http://", 1), &alice);
    let err = plain.health().unwrap_err();
    assert!(matches!(err, fhe_ml::Error::Remote(_)), "{err}");
    let untrusted = as_tenant(&url, &alice);
    assert!(matches!(
        untrusted.health().unwrap_err(),
        fhe_ml::Error::Remote(_)
    ));
    // The service is unharmed.
    assert_eq!(remote.health().unwrap().status, "ok");
    service.stop().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn metrics_count_requests_statuses_and_bootstraps() {
    let dir = temp_dir("metrics");
    let (tenants, [alice, .., ops]) = tenants(&dir);
    let (name, model, rows) = logistic(OutputMode::Label);
    let service = guarded(&name, &model, tenants);
    let remote = as_tenant(&service.url(), &alice);
    let client = Client::new_seeded(model.client_spec(), 3).unwrap();
    remote
        .upload_key(&client.evaluation_key().unwrap())
        .unwrap();
    for row in &rows[..2] {
        remote
            .predict(&name, &client.encrypt(row).unwrap())
            .unwrap();
    }
    let _ = RemoteServer::new(&service.url()).unwrap().models();
    let metrics = |token: Option<&str>| {
        let mut request = ureq::get(&format!("{}/metrics", service.url()));
        if let Some(t) = token {
            request = request.header("authorization", &format!("Bearer {t}"));
        }
        let mut response = request
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .unwrap();
        (
            response.status().as_u16(),
            response.body_mut().read_to_string().unwrap(),
        )
    };
    assert_eq!(metrics(None).0, 401, "metrics need a token too");
    assert_eq!(metrics(Some(&alice)).0, 403, "and an admin tenant's");
    let (status, text) = metrics(Some(&ops));
    assert_eq!(status, 200);
    let line = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(
        line("fhe_ml_http_requests_total{route=\"/v1/models/{name}/predict\",status=\"200\"}"),
        2.0
    );
    assert_eq!(
        line("fhe_ml_http_requests_total{route=\"/v1/models\",status=\"401\"}"),
        1.0
    );
    let per_row = model.bootstraps() as f64;
    assert_eq!(line("fhe_ml_bootstraps_total"), 2.0 * per_row);
    assert_eq!(line("fhe_ml_evaluation_keys_cached"), 1.0);
    assert!(line("fhe_ml_request_bytes_total") > 1e6, "the key's bytes");
    assert!(text.contains("fhe_ml_http_request_duration_seconds_bucket"));
    assert!(
        !text.contains(&alice) && !text.contains(&ops),
        "no token in the metrics"
    );
    service.stop().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The CLI end to end over HTTPS with a token: `token new`, `serve --auth --tls-cert
/// --tls-key`, `eval --server https://... --ca --token` equal to the local `eval`; the
/// service's log names the tenant and never the token.
#[test]
fn cli_eval_over_tls_with_a_token_equals_local_eval() {
    let dir = temp_dir("cli");
    let bin = env!("CARGO_BIN_EXE_fhe-ml");
    let auth = dir.join("tenants");
    let out = Command::new(bin)
        .args(["token", "new", "--tenant", "clinic", "--auth"])
        .arg(&auth)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.lines().last().unwrap().trim().to_string();
    assert!(token.starts_with("fhe_") && token.len() == 68, "{stdout:?}");
    assert!(!std::fs::read_to_string(&auth)
        .unwrap()
        .contains(&token[4..]));
    let (ca, tls) = certificates();
    std::fs::write(dir.join("ca.pem"), &ca).unwrap();
    std::fs::write(dir.join("cert.pem"), &tls.cert).unwrap();
    std::fs::write(dir.join("key.pem"), &tls.key).unwrap();
    let models = dir.join("models");
    let export = Command::new(bin)
        .args([
            "export",
            "--data",
            "data/iris.csv",
            "--model",
            "logistic",
            "--out",
        ])
        .arg(&models)
        .output()
        .unwrap();
    assert!(export.status.success());
    let log = dir.join("serve.log");
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let serve = common::Serve::start_with(
        &[
            "--models",
            &path(&models),
            "--auth",
            &path(&auth),
            "--tls-cert",
            &path(&dir.join("cert.pem")),
            "--tls-key",
            &path(&dir.join("key.pem")),
        ],
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    let port = serve.port;
    let eval = |server: Option<&str>| {
        let mut cmd = Command::new(bin);
        cmd.args([
            "eval",
            "--data",
            "data/iris.csv",
            "--model",
            "logistic",
            "--json",
        ]);
        if let Some(url) = server {
            cmd.args(["--server", url, "--ca"])
                .arg(dir.join("ca.pem"))
                .env("FHE_ML_TOKEN", &token);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        json
    };
    let local = eval(None);
    let remote = eval(Some(&format!("https://localhost:{port}")));
    for key in ["accuracy", "agreement"] {
        assert_eq!(local[key], remote[key], "{key}");
    }
    assert_eq!(remote["exact_scores"], true);
    // Without the token the same command fails with a one-line 401.
    let out = Command::new(bin)
        .args([
            "eval",
            "--data",
            "data/iris.csv",
            "--model",
            "logistic",
            "--server",
        ])
        .arg(format!("https://localhost:{port}"))
        .arg("--ca")
        .arg(dir.join("ca.pem"))
        .env_remove("FHE_ML_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    drop(serve);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("tenant=\"clinic\""), "{log}");
    assert!(
        log.contains("status=401"),
        "the refused request is logged: {log}"
    );
    assert!(
        !log.contains(&token) && !log.contains(&token[4..]),
        "a token in the log"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Resident memory of this process, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The load test over loopback, plain and through TLS and authentication: 8 clients × 500
/// breast-cancer logistic requests each, every answer checked against the clear twin, 0
/// errors, bounded memory; prints requests/s, p50 and p99.
#[test]
fn load_test_through_tls_and_auth() {
    let dir = temp_dir("load");
    let (tenants, [alice, ..]) = tenants(&dir);
    let (ca, tls) = certificates();
    let (name, model, rows) = logistic(OutputMode::Scores);
    let rows = Arc::new(rows);
    let model = Arc::new(model);
    let mut figures = Vec::new();
    for secure in [false, true] {
        let config = if secure {
            ServiceConfig {
                tenants: Some(tenants.clone()),
                tls: Some(tls.clone()),
                ..ServiceConfig::default()
            }
        } else {
            ServiceConfig::default()
        };
        let service = start(&[(name.clone(), (*model).clone())], config);
        let options = if secure {
            RemoteOptions {
                token: Some(alice.clone()),
                ca_pem: Some(ca.clone()),
            }
        } else {
            RemoteOptions::default()
        };
        let errors = Arc::new(AtomicUsize::new(0));
        let before = rss_kib();
        let start_time = Instant::now();
        let threads: Vec<_> = (0..8)
            .map(|c| {
                let (url, name, rows, model, errors, options) = (
                    service.url(),
                    name.clone(),
                    rows.clone(),
                    model.clone(),
                    errors.clone(),
                    options.clone(),
                );
                std::thread::spawn(move || {
                    let remote = RemoteServer::connect(&url, &options).unwrap();
                    let client = Client::new(model.client_spec()).unwrap();
                    let mut latencies = Vec::with_capacity(500);
                    for i in 0..500 {
                        let row = &rows[(c * 500 + i) % rows.len()];
                        let ct = client.encrypt(row).unwrap();
                        let t = Instant::now();
                        let answer = remote.predict(&name, &ct);
                        latencies.push(t.elapsed().as_secs_f64() * 1e3);
                        match answer.and_then(|out| client.decrypt_scores(&out)) {
                            Ok(scores) if scores == model.simulate(row).unwrap() => {}
                            _ => {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    latencies
                })
            })
            .collect();
        let mut latencies: Vec<f64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let seconds = start_time.elapsed().as_secs_f64();
        latencies.sort_by(f64::total_cmp);
        let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
        assert_eq!(errors.load(Ordering::Relaxed), 0, "failed or wrong answers");
        assert_eq!(latencies.len(), 4000);
        let grown_mib = rss_kib().saturating_sub(before) as f64 / 1024.0;
        assert!(grown_mib < 256.0, "memory grew by {grown_mib:.0} MiB");
        figures.push((
            if secure { "TLS + token" } else { "plain HTTP" },
            latencies.len() as f64 / seconds,
            pct(0.5),
            pct(0.99),
        ));
        service.stop().unwrap();
    }
    for (what, rate, p50, p99) in &figures {
        eprintln!(
            "load test, {what}: 4000 requests from 8 clients: {rate:.0} requests/s, p50 {p50:.2} ms, p99 {p99:.2} ms"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
