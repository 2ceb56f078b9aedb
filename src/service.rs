//! The inference service: an HTTP API (axum on tokio) that serves compiled models to remote
//! clients. It never sees a secret key: clients send their evaluation keys (for models that
//! bootstrap) and ciphertexts, and get ciphertexts back.
//!
//! Endpoints (JSON for metadata and errors, binary wire blobs for keys and ciphertexts):
//! - `GET  /v1/health`: liveness (200 while the process serves)
//! - `GET  /v1/ready`: readiness: 200, or 503 once shutdown has begun (load balancers stop
//!   sending new requests while the replica finishes those it has)
//! - `GET  /v1/models`, `GET /v1/models/{name}`: what a client needs to encrypt (feature names,
//!   quantization, parameter set, output kind, and the client spec as base64)
//! - `GET  /v1/models/{name}/client-spec`: the client spec blob
//! - `POST /v1/keys`: an evaluation key blob; returns its key id
//! - `POST /v1/models/{name}/predict`: an `EncryptedInput` blob in, an `EncryptedOutput` out
//! - `POST /v1/models/{name}/predict-batch`: an input batch blob in, an output batch out
//!
//! - `GET  /metrics`: Prometheus metrics (OpenMetrics text, [`crate::metrics`])
//!
//! Every failure a client can cause is a 4xx with `{"error": "...", "variant": "..."}`; the
//! service keeps serving. Request bodies are size-limited per endpoint, requests time out, heavy
//! work runs on a bounded number of blocking threads, expanded keys are bounded (least recently
//! used go first), and the server shuts down gracefully on Ctrl-C or SIGTERM.
//!
//! Keys ([`crate::keystore`]): uploaded key blobs go to a key store: in this process (bounded
//! in MiB) or a Redis server that every replica of a cluster shares, so any replica serves any
//! client. Each replica keeps the keys it expanded in a cache bounded in MiB
//! ([`ServiceConfig::key_cache_mib`]) and fetches a key it lacks from the store.
//!
//! Security ([`ServiceConfig::tenants`], [`ServiceConfig::tls`]): with tenants, every route but
//! health needs `Authorization: Bearer TOKEN` (401 without a known one); evaluation keys are
//! held per tenant, and a ciphertext naming another tenant's key gets 403; each tenant's request
//! rate and per-model query budget answer 429 with `Retry-After` when spent. With TLS the
//! service speaks only HTTPS (rustls). Logs carry a request id, the route pattern, the status and
//! the tenant's name: never a token, a key or a ciphertext.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Bytes, HttpBody};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use governor::clock::{Clock, DefaultClock};
use governor::DefaultDirectRateLimiter;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::auth::{Quota, Tenants};
use crate::error::{Error, Result};
use crate::fhe::bootstrap::{Bootstrapper, KeyId};
use crate::fhe::wire::{self, Kind};
use crate::fhe::{EvaluationKey, OutputMode};
use crate::keystore::{FairLru, KeyStore, Lookup, Owner, Spent, MIB};
use crate::metrics::Metrics;
use crate::model::CompiledModel;
use crate::program::OutputKind;
use crate::protocol::ClientSpec;
use crate::protocol::{EncryptedInput, EncryptedOutput, ServerModel};
use crate::server::Server;

/// Limits and sizes of a running service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The key store: `memory` (this process) or a `redis://` URL shared by replicas
    /// (`--key-store`).
    pub key_store: String,
    /// Bound of the in-process key store, in MiB (key blobs are about 29 MiB).
    pub key_store_mib: usize,
    /// Seconds a key stays in a Redis store after its last use.
    pub key_ttl_s: u64,
    /// Bound of this replica's cache of expanded keys, in MiB (about 86 MiB per key); the
    /// least recently used go first, from the tenant holding the most.
    pub key_cache_mib: usize,
    /// Turned off when shutdown begins: `/v1/ready` then answers 503.
    pub readiness: Readiness,
    /// Rows in one batch request.
    pub max_batch: usize,
    /// Inferences and key expansions running at once (blocking threads); more wait.
    pub workers: usize,
    /// Whole-request time limit.
    pub request_timeout: Duration,
    /// Tenants, their tokens and quotas (`fhe-ml serve --auth FILE`); `None`: no
    /// authentication, for loopback and trusted networks only.
    pub tenants: Option<Arc<Tenants>>,
    /// Certificate chain and private key, PEM (`--tls-cert`, `--tls-key`); `None`: plain HTTP.
    pub tls: Option<TlsPem>,
}

/// A TLS certificate chain and its private key, PEM. Its `Debug` hides the key.
#[derive(Clone)]
pub struct TlsPem {
    /// The certificate chain, leaf first.
    pub cert: Vec<u8>,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Vec<u8>,
}

impl std::fmt::Debug for TlsPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsPem")
            .field("cert", &format!("{} bytes", self.cert.len()))
            .field("key", &"(hidden)")
            .finish()
    }
}

impl TlsPem {
    /// Reads a certificate chain and key from PEM files.
    ///
    /// # Errors
    /// `Error::Io` when a file cannot be read.
    pub fn load(cert: &std::path::Path, key: &std::path::Path) -> Result<Self> {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })
        };
        Ok(Self {
            cert: read(cert)?,
            key: read(key)?,
        })
    }

    /// The rustls server configuration (ring provider, TLS 1.2 and 1.3, HTTP/1.1).
    ///
    /// # Errors
    /// `Error::Input` for PEM without a certificate or a key, or a key that does not match.
    pub fn server_config(&self) -> Result<rustls::ServerConfig> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let bad = |what: &str, e: String| Error::Input(format!("TLS {what}: {e}"));
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&self.cert)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| bad("certificate", e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("certificate", "no certificate in the PEM".into()));
        }
        let key =
            PrivateKeyDer::from_pem_slice(&self.key).map_err(|e| bad("key", e.to_string()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("configuration", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad("certificate and key", e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// Whether a replica takes new requests: ready from the start, draining once shutdown begins.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Turns readiness off for good (`/v1/ready` answers 503).
    pub fn drain(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether the replica is ready (not draining).
    pub fn is_ready(&self) -> bool {
        !self.0.load(Ordering::SeqCst)
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            key_store: "memory".into(),
            key_store_mib: 512,
            key_ttl_s: 7 * 24 * 3600,
            key_cache_mib: 1024,
            readiness: Readiness::default(),
            max_batch: 1024,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            request_timeout: Duration::from_secs(300),
            tenants: None,
            tls: None,
        }
    }
}

/// Request body limits, per endpoint.
const INPUT_LIMIT: usize = 1 << 20;
const KEY_LIMIT: usize = 48 << 20;
const BATCH_LIMIT: usize = 64 << 20;

/// A model as the service stores it (and `fhe-ml export` writes it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelBundle {
    /// The name it is served under (URLs, `export`'s file name): see [`check_model_name`].
    pub name: String,
    /// One line on the model (its architecture), for listings.
    pub description: String,
    /// The public part clients fetch: schema, quantizer, decoder and encoding plan.
    pub client_spec: ClientSpec,
    /// The part the server evaluates: the integer program and its plan, no key material.
    pub server_model: ServerModel,
}

impl ModelBundle {
    /// Bundles a compiled model under `name`; the name is checked where bundles are read
    /// ([`ModelBundle::from_bytes`]) and served ([`router`]).
    pub fn new(name: &str, model: &CompiledModel) -> Self {
        Self {
            name: name.to_string(),
            description: model.architecture().to_string(),
            client_spec: model.client_spec(),
            server_model: model.server_model(),
        }
    }

    /// Serializes into a model file: a versioned, size-limited, integrity-checked blob of
    /// kind `ModelBundle`.
    ///
    /// # Errors
    /// `Error::Wire` when the bundle does not serialize within the kind's 64 MiB limit.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        wire::seal(Kind::ModelBundle, self)
    }

    /// Reads a model file written by [`ModelBundle::to_bytes`], checking its client spec,
    /// that spec and server model belong to one model, and its name.
    ///
    /// # Errors
    /// `Error::ModelFile` for truncated, corrupted, oversized or foreign bytes, an
    /// inconsistent spec, parts of different models, or an invalid name; `Error::Compile` for
    /// a spec with no features or more than the parameter set's polynomial size.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let as_model_file = |e: Error| match e {
            Error::Wire(m) => Error::ModelFile(m),
            e @ (Error::WrongKind { .. } | Error::TooLarge { .. }) => {
                Error::ModelFile(e.to_string())
            }
            other => other,
        };
        let bundle: Self = wire::open(Kind::ModelBundle, bytes).map_err(as_model_file)?;
        bundle.client_spec.validate().map_err(as_model_file)?;
        if bundle.client_spec.model_id != bundle.server_model.model_id {
            return Err(Error::ModelFile(
                "the bundle's client spec and server model belong to different models".into(),
            ));
        }
        check_model_name(&bundle.name)?;
        Ok(bundle)
    }
}

pub use crate::protocol::{
    check_model_name, sanitize_model_name, Health, KeyReceipt, ModelInfo, MAX_MODEL_NAME,
};

/// The models `fhe-ml serve` offers without `--models`: `eval`'s defaults on the shipped data
/// (so `fhe-ml eval --server` with default settings meets the same models): breast-cancer
/// logistic regression, tree and forest; digits logistic regression and MLP; both logistic
/// regressions in label mode (`-label`), and the digits one in top-3 mode (`-top3`).
///
/// # Errors
/// Only if the shipped data or defaults are broken: `Error::Csv` or `Error::Data` for the
/// data, `Error::Training` or `Error::Compile` for a model.
pub fn default_models() -> Result<Vec<ModelBundle>> {
    use crate::data::{parse_csv_str, BREAST_CANCER_CSV, DIGITS_CSV};
    use crate::eval::{compile_model, service_name, EvalConfig, ModelKind, Source};
    let breast_cancer = parse_csv_str(BREAST_CANCER_CSV, "breast_cancer")?;
    let digits = parse_csv_str(DIGITS_CSV, "digits")?;
    [
        (&breast_cancer, ModelKind::Logistic),
        (&breast_cancer, ModelKind::Tree),
        (&breast_cancer, ModelKind::Forest),
        (&digits, ModelKind::Logistic),
        (&digits, ModelKind::Mlp),
    ]
    .into_iter()
    .map(|(table, kind)| {
        let config = EvalConfig::new(Source::BuiltinBreastCancer, kind);
        let model = compile_model(&config, table)?;
        let mut bundles = vec![ModelBundle::new(
            &service_name(&table.name, kind, OutputMode::Scores),
            &model,
        )];
        // The linear models are also served in label mode, and the multiclass one in top-3
        // mode (the same training).
        if kind == ModelKind::Logistic {
            let mut modes = vec![OutputMode::Label];
            if matches!(model.decoder().kind, OutputKind::Multiclass { .. }) {
                modes.push(OutputMode::TopK(3));
            }
            for mode in modes {
                bundles.push(ModelBundle::new(
                    &service_name(&table.name, kind, mode),
                    &model.clone().with_output(mode)?,
                ));
            }
        }
        Ok(bundles)
    })
    .collect::<Result<Vec<_>>>()
    .map(|v| v.into_iter().flatten().collect())
}

pub use crate::protocol::hex;

struct Served {
    bundle: ModelBundle,
    spec_blob: Vec<u8>,
    /// Leveled models run without a key: one server for every client.
    leveled: Option<Arc<Server>>,
}

/// Expanded keys per tenant (bounded in bytes, least recently used first) and the
/// per-(model, tenant, key) servers built on them.
struct Keys {
    expanded: FairLru<Arc<Bootstrapper>>,
    servers: HashMap<(String, Owner, KeyId), Arc<Server>>,
}

impl Keys {
    /// Caches an expanded key; drops the servers of the keys it evicts.
    fn insert(&mut self, owner: &Owner, expanded: Arc<Bootstrapper>) {
        let size = expanded.heap_bytes();
        let id = expanded.id;
        for (t, k) in self.expanded.insert(owner, &id, expanded, size) {
            self.servers.retain(|(_, st, sk), _| (st, sk) != (&t, &k));
        }
    }
}

/// Who is calling: the authenticated tenant and its budget (nobody without authentication).
#[derive(Clone, Default)]
struct Caller {
    tenant: Owner,
    budget: Option<Quota>,
    /// May read `/metrics` (which shows every tenant's traffic).
    admin: bool,
}

struct AppState {
    models: BTreeMap<String, Served>,
    keys: Mutex<Keys>,
    store: Arc<dyn KeyStore>,
    /// One key upload or fetch at a time: requests that miss the same key wait for the first
    /// fetch instead of each fetching and expanding it, and memory holds one expansion at most.
    loading: tokio::sync::Mutex<()>,
    workers: Semaphore,
    config: ServiceConfig,
    /// Per tenant: its request-rate limiter.
    limiters: HashMap<String, (Quota, DefaultDirectRateLimiter)>,
    metrics: Metrics,
}

/// An error response: the status of the error's variant ([`Error::http_status`]) and
/// `{"error": message, "variant": "UnknownModel"}`.
/// A 429 also carries `Retry-After` (seconds), a 401 `WWW-Authenticate: Bearer`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    variant: &'static str,
    message: String,
    retry_after_s: Option<u64>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(serde_json::json!({ "error": self.message, "variant": self.variant })),
        )
            .into_response();
        if let Some(seconds) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let retry_after_s = match &e {
            Error::RateLimited { retry_after_s, .. } => Some(*retry_after_s),
            _ => None,
        };
        ApiError {
            status: StatusCode::from_u16(e.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            variant: e.variant(),
            message: e.to_string(),
            retry_after_s,
        }
    }
}

fn body(bytes: std::result::Result<Bytes, BytesRejection>) -> std::result::Result<Bytes, ApiError> {
    bytes.map_err(|r| {
        let status = r.status();
        let variant = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "TooLarge"
        } else {
            "Input"
        };
        ApiError {
            status,
            variant,
            message: format!("unreadable request body: {}", r.body_text()),
            retry_after_s: None,
        }
    })
}

fn binary(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
}

impl AppState {
    fn model(&self, name: &str) -> std::result::Result<&Served, ApiError> {
        self.models.get(name).ok_or_else(|| {
            Error::UnknownModel {
                name: name.to_string(),
            }
            .into()
        })
    }

    /// The caller's expanded key `key_id`: from this replica's cache, or fetched from the key
    /// store and expanded.
    async fn expanded_key(
        self: &Arc<Self>,
        key_id: KeyId,
        caller: &Caller,
    ) -> std::result::Result<Arc<Bootstrapper>, ApiError> {
        let cached = |state: &Self| {
            let mut keys = state.keys.lock().unwrap_or_else(|p| p.into_inner());
            keys.expanded.get(&caller.tenant, &key_id).cloned()
        };
        if let Some(expanded) = cached(self) {
            return Ok(expanded);
        }
        let _loading = self.loading.lock().await;
        if let Some(expanded) = cached(self) {
            return Ok(expanded);
        }
        let (store, owner) = (self.store.clone(), caller.tenant.clone());
        let fetched = self
            .heavy(move || match store.get(&owner, &key_id)? {
                Lookup::Found(blob) => {
                    let expanded = EvaluationKey::from_bytes(&blob)?
                        .expand(&crate::fhe::LeveledParameters::default())?;
                    if expanded.id != key_id {
                        return Err(Error::Unavailable(
                            "the key store returned another key than the one asked for".into(),
                        ));
                    }
                    Ok(Ok(expanded))
                }
                Lookup::Missing => Ok(Err(Error::UnknownKey {
                    key_id: hex(&key_id),
                })),
                Lookup::OtherOwner => Ok(Err(Error::Forbidden(format!(
                    "evaluation key {} belongs to another tenant",
                    hex(&key_id)
                )))),
            })
            .await??;
        self.metrics.key_fetches.inc();
        let expanded = Arc::new(fetched);
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.insert(&caller.tenant, expanded.clone());
        self.metrics.keys_cached.set(keys.expanded.len() as i64);
        Ok(expanded)
    }

    /// The server for a model and the key an input names, among the caller's keys.
    async fn server_for(
        self: &Arc<Self>,
        served: &Served,
        key_id: Option<KeyId>,
        caller: &Caller,
    ) -> std::result::Result<Arc<Server>, ApiError> {
        if let Some(server) = &served.leveled {
            return Ok(server.clone());
        }
        let key_id = key_id.ok_or_else(|| {
            Error::Input(
                "this model bootstraps: the ciphertext must come from a client that sent its evaluation key".into(),
            )
        })?;
        let expanded = self.expanded_key(key_id, caller).await?;
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let entry = (served.bundle.name.clone(), caller.tenant.clone(), key_id);
        if let Some(server) = keys.servers.get(&entry) {
            return Ok(server.clone());
        }
        // Building the test polynomials takes a while: not under the lock every tenant needs.
        drop(keys);
        let server = Arc::new(Server::with_expanded_key(
            served.bundle.server_model.clone(),
            expanded,
        )?);
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.expanded.get(&entry.1, &entry.2).is_some() {
            keys.servers.insert(entry, server.clone());
        }
        Ok(server)
    }

    /// Spends `rows` of the caller's query budget for `model` in the key store (shared by
    /// every replica): 429 when the window's budget would be exceeded (fixed windows from the
    /// first query; nothing is spent then).
    async fn spend(
        &self,
        caller: &Caller,
        model: &str,
        rows: u64,
    ) -> std::result::Result<(), ApiError> {
        let (Some(tenant), Some(budget)) = (&caller.tenant, caller.budget) else {
            return Ok(());
        };
        if rows > budget.count {
            // Waiting would never help: the batch is larger than the whole budget.
            return Err(Error::TooLarge {
                what: format!("the batch (rows) for a query budget of {budget}"),
                limit: budget.count as usize,
                size: rows as usize,
            }
            .into());
        }
        let (store, who, name) = (self.store.clone(), tenant.clone(), model.to_string());
        // A round trip to Redis: off the async workers, but without a heavy worker's permit.
        let spent = tokio::task::spawn_blocking(move || store.spend(&who, &name, rows, budget))
            .await
            .map_err(|e| Error::Other(format!("worker failed: {e}")))??;
        match spent {
            Spent::Within => Ok(()),
            Spent::Over { used, wait } => Err(Error::RateLimited {
                what: format!(
                    "query budget {budget} rows for model {model} ({used} used, {rows} asked)"
                ),
                retry_after_s: (wait.as_secs_f64().ceil() as u64).max(1),
            }
            .into()),
        }
    }

    /// Runs blocking work on a bounded number of threads.
    async fn heavy<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> std::result::Result<T, ApiError> {
        let _permit = self
            .workers
            .acquire()
            .await
            .map_err(|_| Error::Unavailable("shutting down".into()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Error::Other(format!("worker failed: {e}")))?
            .map_err(ApiError::from)
    }
}

fn info(served: &Served) -> ModelInfo {
    let spec = &served.bundle.client_spec;
    let (output, classes) = match &spec.decoder.kind {
        OutputKind::Binary { classes } => ("binary", classes.to_vec()),
        OutputKind::Multiclass { classes } => ("multiclass", classes.clone()),
        OutputKind::Regression => ("regression", Vec::new()),
    };
    ModelInfo {
        name: served.bundle.name.clone(),
        description: served.bundle.description.clone(),
        model_id: hex(&spec.model_id),
        n_features: spec.feature_names.len(),
        columns: spec.schema.columns.clone(),
        feature_names: spec.feature_names.clone(),
        input_bits: spec.quantizer.bits,
        params: spec.plan.params.describe(),
        output: output.into(),
        classes,
        needs_evaluation_key: spec.needs_evaluation_key,
        output_mode: spec.output.to_string(),
        bootstraps_per_inference: served.bundle.server_model.program.bootstraps(),
        client_spec: base64::engine::general_purpose::STANDARD.encode(&served.spec_blob),
    }
}

async fn health(State(state): State<Arc<AppState>>) -> Json<Health> {
    let (keys, key_cache_bytes) = {
        let keys = state.keys.lock().unwrap_or_else(|p| p.into_inner());
        (keys.expanded.len(), keys.expanded.bytes() as u64)
    };
    Json(Health {
        status: "ok".into(),
        models: state.models.len(),
        keys,
        key_cache_bytes,
        key_store: state.store.describe(),
        ready: state.config.readiness.is_ready(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// `GET /v1/ready`: 200 `{"ready": true}`, or 503 once shutdown has begun.
async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let ready = state.config.readiness.is_ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(serde_json::json!({ "ready": ready }))).into_response()
}

async fn list_models(State(state): State<Arc<AppState>>) -> Json<Vec<ModelInfo>> {
    Json(state.models.values().map(info).collect())
}

async fn get_model(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> std::result::Result<Json<ModelInfo>, ApiError> {
    Ok(Json(info(state.model(&name)?)))
}

async fn get_client_spec(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> std::result::Result<Response, ApiError> {
    Ok(binary(state.model(&name)?.spec_blob.clone()))
}

async fn post_key(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: std::result::Result<Bytes, BytesRejection>,
) -> std::result::Result<Json<KeyReceipt>, ApiError> {
    let bytes = body(bytes)?;
    let size = bytes.len();
    let (store, owner) = (state.store.clone(), caller.tenant.clone());
    // One key expanded at a time (each takes about 300 MiB while it is): memory stays within
    // the cache bound plus one expansion.
    let _loading = state.loading.lock().await;
    // Checked and expanded before it is stored: the store holds only usable keys.
    let expanded = state
        .heavy(move || {
            let key = EvaluationKey::from_bytes(&bytes)?;
            let params = crate::fhe::LeveledParameters::default();
            let expanded = key.expand(&params)?;
            store.put(&owner, &expanded.id, &bytes)?;
            Ok(expanded)
        })
        .await?;
    let id = expanded.id;
    let mut keys = state.keys.lock().unwrap_or_else(|p| p.into_inner());
    keys.insert(&caller.tenant, Arc::new(expanded));
    state.metrics.keys_cached.set(keys.expanded.len() as i64);
    Ok(Json(KeyReceipt {
        key_id: hex(&id),
        bytes: size,
    }))
}

async fn predict(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    bytes: std::result::Result<Bytes, BytesRejection>,
) -> std::result::Result<Response, ApiError> {
    let bytes = body(bytes)?;
    let served = state.model(&name)?;
    let input = EncryptedInput::from_bytes(&bytes)?;
    let server = state.server_for(served, input.key_id, &caller).await?;
    state.spend(&caller, &name, 1).await?;
    let bootstraps = server.bootstraps_per_inference() as u64;
    let out = state
        .heavy(move || server.infer(&input)?.to_bytes())
        .await?;
    state.metrics.bootstraps.inc_by(bootstraps);
    Ok(binary(out))
}

async fn predict_batch(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    bytes: std::result::Result<Bytes, BytesRejection>,
) -> std::result::Result<Response, ApiError> {
    let bytes = body(bytes)?;
    let served = state.model(&name)?;
    let inputs: Vec<EncryptedInput> = wire::open(Kind::InputBatch, &bytes)?;
    if inputs.is_empty() {
        return Err(Error::Input("an empty batch".into()).into());
    }
    if inputs.len() > state.config.max_batch {
        return Err(Error::TooLarge {
            what: "the batch (rows)".into(),
            limit: state.config.max_batch,
            size: inputs.len(),
        }
        .into());
    }
    let key_id = inputs[0].key_id;
    if inputs.iter().any(|i| i.key_id != key_id) {
        return Err(
            Error::Input("every row of a batch must come from the same client".into()).into(),
        );
    }
    let server = state.server_for(served, key_id, &caller).await?;
    state.spend(&caller, &name, inputs.len() as u64).await?;
    let bootstraps = (server.bootstraps_per_inference() * inputs.len()) as u64;
    let out = state
        .heavy(move || {
            let outputs: Vec<EncryptedOutput> = server
                .infer_batch(&inputs)
                .into_iter()
                .collect::<Result<_>>()?;
            wire::seal(Kind::OutputBatch, &outputs)
        })
        .await?;
    state.metrics.bootstraps.inc_by(bootstraps);
    Ok(binary(out))
}

async fn metrics(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> std::result::Result<Response, ApiError> {
    if state.config.tenants.is_some() && !caller.admin {
        return Err(Error::Forbidden(
            "metrics show every tenant's traffic: they need an admin tenant's token (`token new --admin`)".into(),
        )
        .into());
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response())
}

async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        variant: "NotFound",
        message: "no such endpoint (see /v1/health, /v1/models)".into(),
        retry_after_s: None,
    }
}

/// The route pattern of a path: what metrics and logs name (never the path itself, which a
/// client chooses).
fn route_of(path: &str) -> &'static str {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["", "v1", "health"] => "/v1/health",
        ["", "v1", "ready"] => "/v1/ready",
        ["", "v1", "keys"] => "/v1/keys",
        ["", "v1", "models"] => "/v1/models",
        ["", "v1", "models", _] => "/v1/models/{name}",
        ["", "v1", "models", _, "client-spec"] => "/v1/models/{name}/client-spec",
        ["", "v1", "models", _, "predict"] => "/v1/models/{name}/predict",
        ["", "v1", "models", _, "predict-batch"] => "/v1/models/{name}/predict-batch",
        ["", "metrics"] => "/metrics",
        _ => "unmatched",
    }
}

/// Authentication and the request rate: 401 without a known token, 429 over the tenant's
/// rate; the caller goes to the handlers. Without tenants, everyone is the anonymous caller.
async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let caller = match &state.config.tenants {
        None => Caller::default(),
        Some(tenants) => {
            // The scheme is case-insensitive (RFC 9110, 11.1).
            let token = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token);
            let Some(token) = token else {
                return ApiError::from(Error::Unauthorized(
                    "send `Authorization: Bearer TOKEN` (tokens come from `fhe-ml token new`)"
                        .into(),
                ))
                .into_response();
            };
            let Some(tenant) = tenants.authenticate(token.trim()) else {
                return ApiError::from(Error::Unauthorized("unknown token".into())).into_response();
            };
            tracing::Span::current().record("tenant", tenant.name.as_str());
            if let Some((quota, limiter)) = state.limiters.get(&tenant.name) {
                if let Err(not_until) = limiter.check() {
                    let wait = not_until.wait_time_from(DefaultClock::default().now());
                    return ApiError::from(Error::RateLimited {
                        what: format!("request rate {quota}"),
                        retry_after_s: wait.as_secs_f64().ceil().max(1.0) as u64,
                    })
                    .into_response();
                }
            }
            Caller {
                tenant: Some(Arc::from(tenant.name.as_str())),
                budget: tenant.budget,
                admin: tenant.admin,
            }
        }
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// Counts every request in the metrics: route pattern, status, latency, body sizes.
async fn track(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = route_of(req.uri().path());
    // Bodies only of routes that read them; hyper holds a body to its declared length.
    let limit = match route {
        "/v1/keys" => KEY_LIMIT,
        "/v1/models/{name}/predict" => INPUT_LIMIT,
        "/v1/models/{name}/predict-batch" => BATCH_LIMIT,
        _ => 0,
    } as u64;
    let bytes_in = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .unwrap_or(0)
        .min(limit);
    let start = Instant::now();
    let response = next.run(req).await;
    let bytes_out = response.body().size_hint().exact().unwrap_or(0);
    state.metrics.record(
        route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
        bytes_in,
        bytes_out,
    );
    response
}

/// A tenant's request quota as a GCRA limiter allowing a burst of the whole quota.
fn limiter(quota: Quota) -> DefaultDirectRateLimiter {
    let count = NonZeroU32::new(quota.count.min(u32::MAX as u64) as u32).unwrap_or(NonZeroU32::MIN);
    let period = quota.window / count.get();
    let gcra = governor::Quota::with_period(period)
        .unwrap_or_else(|| governor::Quota::per_second(NonZeroU32::MAX))
        .allow_burst(count);
    governor::RateLimiter::direct(gcra)
}

/// The service's routes over a set of models.
///
/// # Errors
/// `Error::ModelFile` for an invalid or repeated model name; for a leveled model,
/// `Error::Compile` (or `Error::Wire` for an unknown parameter set) when its program or plan
/// is invalid; `Error::Wire` when a client spec does not serialize.
pub fn router(models: Vec<ModelBundle>, config: ServiceConfig) -> Result<Router> {
    let mut served = BTreeMap::new();
    for bundle in models {
        check_model_name(&bundle.name)?;
        // Every model is checked now, not at its first query.
        crate::program::encrypted::EncryptedProgram::check(&bundle.server_model)?;
        let leveled = if bundle.client_spec.needs_evaluation_key {
            None
        } else {
            Some(Arc::new(Server::new(bundle.server_model.clone())?))
        };
        let spec_blob = bundle.client_spec.to_bytes()?;
        let name = bundle.name.clone();
        if served
            .insert(
                name.clone(),
                Served {
                    bundle,
                    spec_blob,
                    leveled,
                },
            )
            .is_some()
        {
            return Err(Error::ModelFile(format!("two models named {name}")));
        }
    }
    let limiters = config
        .tenants
        .iter()
        .flat_map(|t| t.iter())
        .filter_map(|t| Some((t.name.clone(), (t.rate?, limiter(t.rate?)))))
        .collect();
    let store = crate::keystore::open(&config.key_store, config.key_store_mib, config.key_ttl_s)?;
    let state = Arc::new(AppState {
        models: served,
        keys: Mutex::new(Keys {
            expanded: FairLru::new(config.key_cache_mib.saturating_mul(MIB)),
            servers: HashMap::new(),
        }),
        store,
        loading: tokio::sync::Mutex::new(()),
        workers: Semaphore::new(config.workers.max(1)),
        config: config.clone(),
        limiters,
        metrics: Metrics::default(),
    });
    let trace = tower_http::trace::TraceLayer::new_for_http()
        .make_span_with(|req: &Request| {
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::info_span!(
                "request",
                method = %req.method(),
                route = route_of(req.uri().path()),
                request_id = ?id,
                tenant = tracing::field::Empty,
            )
        })
        .on_response(tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO));
    Ok(Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{name}", get(get_model))
        .route("/v1/models/{name}/client-spec", get(get_client_spec))
        .route(
            "/v1/keys",
            post(post_key).layer(DefaultBodyLimit::max(KEY_LIMIT)),
        )
        .route(
            "/v1/models/{name}/predict",
            post(predict).layer(DefaultBodyLimit::max(INPUT_LIMIT)),
        )
        .route(
            "/v1/models/{name}/predict-batch",
            post(predict_batch).layer(DefaultBodyLimit::max(BATCH_LIMIT)),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .route("/v1/health", get(health))
        .route("/v1/ready", get(ready))
        .fallback(not_found)
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(tower_http::request_id::PropagateRequestIdLayer::x_request_id())
        .layer(trace)
        .layer(tower_http::request_id::SetRequestIdLayer::x_request_id(
            tower_http::request_id::MakeRequestUuid,
        ))
        .with_state(state))
}

/// Serves until `shutdown` completes, then finishes the requests in flight (at most 30 s with
/// TLS); over HTTPS only when `tls` is given.
///
/// # Errors
/// `Error::Input` for an unusable certificate or key; `Error::Other` when the server stops on
/// an I/O error.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    tls: Option<TlsPem>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let stopped = |e: std::io::Error| Error::Other(format!("service stopped: {e}"));
    let Some(tls) = tls else {
        return axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(stopped);
    };
    let config = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls.server_config()?));
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(Duration::from_secs(30)));
    });
    let listener = listener.into_std().map_err(stopped)?;
    axum_server::from_tcp_rustls(listener, config)
        .map_err(stopped)?
        .handle(handle)
        .serve(router.into_make_service())
        .await
        .map_err(stopped)
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

/// A service running on its own threads (tests, notebooks, embedding): stops when dropped.
pub struct Background {
    /// The address it listens on (with the port picked when port 0 was asked for).
    pub addr: SocketAddr,
    scheme: &'static str,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Background {
    /// Starts the service on `addr` (port 0 picks a free one).
    ///
    /// # Errors
    /// As [`router`] for the models; `Error::Other` when the runtime cannot start or `addr`
    /// cannot be bound.
    pub fn start(models: Vec<ModelBundle>, config: ServiceConfig, addr: &str) -> Result<Self> {
        let tls = config.tls.clone();
        if let Some(tls) = &tls {
            tls.server_config()?;
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        let router = router(models, config)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .worker_threads(2)
            .build()
            .map_err(|e| Error::Other(format!("cannot start the runtime: {e}")))?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .map_err(|e| Error::Other(format!("cannot listen on {addr}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Other(e.to_string()))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            runtime.block_on(serve(listener, router, tls, async {
                let _ = stopped.await;
            }))
        });
        Ok(Self {
            addr,
            scheme,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The service's base URL, `http://` (or `https://` with TLS) and the address, for
    /// [`crate::remote::RemoteServer::new`].
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Stops accepting requests, finishes those in flight, and joins the service's thread.
    ///
    /// # Errors
    /// `Error::Other` when the service stopped on an I/O error or its thread panicked.
    pub fn stop(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| Error::Other("the service thread panicked".into()))?,
            None => Ok(()),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
