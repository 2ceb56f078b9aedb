//! The inference service: an HTTP API (axum on tokio) that serves compiled models to remote
//! clients. It never sees a secret key: clients send their evaluation keys (for models that
//! bootstrap) and ciphertexts, and get ciphertexts back.
//!
//! Endpoints (JSON for metadata and errors, binary wire blobs for keys and ciphertexts):
//! - `GET  /v1/health`
//! - `GET  /v1/models`, `GET /v1/models/{name}`: what a client needs to encrypt (feature names,
//!   quantization, parameter set, output kind, and the client spec as base64)
//! - `GET  /v1/models/{name}/client-spec`: the client spec blob
//! - `POST /v1/keys`: an evaluation key blob; returns its key id
//! - `POST /v1/models/{name}/predict`: an `EncryptedInput` blob in, an `EncryptedOutput` out
//! - `POST /v1/models/{name}/predict-batch`: an input batch blob in, an output batch out
//!
//! Every failure a client can cause is a 4xx with `{"error": "..."}`; the service keeps
//! serving. Request bodies are size-limited per endpoint, requests time out, heavy work runs on
//! a bounded number of blocking threads, expanded keys are bounded (least recently used go
//! first), and the server shuts down gracefully on Ctrl-C or SIGTERM.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::error::{Error, Result};
use crate::fhe::bootstrap::{Bootstrapper, KeyId};
use crate::fhe::wire::{self, Kind};
use crate::fhe::{EvaluationKey, OutputMode};
use crate::model::CompiledModel;
use crate::program::OutputKind;
use crate::protocol::ClientSpec;
use crate::protocol::{EncryptedInput, EncryptedOutput, ServerModel};
use crate::server::Server;

/// Limits and sizes of a running service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Expanded evaluation keys kept (about 120 MiB each); the least recently used goes first.
    pub max_keys: usize,
    /// Rows in one batch request.
    pub max_batch: usize,
    /// Inferences and key expansions running at once (blocking threads); more wait.
    pub workers: usize,
    /// Whole-request time limit.
    pub request_timeout: Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            max_keys: 8,
            max_batch: 1024,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            request_timeout: Duration::from_secs(300),
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

/// Lowercase hex of an id (model ids, key ids), as the service's JSON writes them.
pub fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

struct Served {
    bundle: ModelBundle,
    spec_blob: Vec<u8>,
    /// Leveled models run without a key: one server for every client.
    leveled: Option<Arc<Server>>,
}

/// Expanded keys (least recently used first) and the per-(model, key) servers built on them.
#[derive(Default)]
struct Keys {
    order: VecDeque<KeyId>,
    expanded: HashMap<KeyId, Arc<Bootstrapper>>,
    servers: HashMap<(String, KeyId), Arc<Server>>,
}

struct AppState {
    models: BTreeMap<String, Served>,
    keys: Mutex<Keys>,
    workers: Semaphore,
    config: ServiceConfig,
}

/// An error response: the status of the error's variant ([`Error::http_status`]) and
/// `{"error": message, "variant": "UnknownModel"}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    variant: &'static str,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message, "variant": self.variant })),
        )
            .into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError {
            status: StatusCode::from_u16(e.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            variant: e.variant(),
            message: e.to_string(),
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

    /// The server for a model and the key an input names.
    fn server_for(
        &self,
        served: &Served,
        key_id: Option<KeyId>,
    ) -> std::result::Result<Arc<Server>, ApiError> {
        if let Some(server) = &served.leveled {
            return Ok(server.clone());
        }
        let key_id = key_id.ok_or_else(|| {
            Error::Input(
                "this model bootstraps: the ciphertext must come from a client that sent its evaluation key".into(),
            )
        })?;
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let expanded = keys
            .expanded
            .get(&key_id)
            .cloned()
            .ok_or_else(|| Error::UnknownKey {
                key_id: hex(&key_id),
            })?;
        keys.order.retain(|k| *k != key_id);
        keys.order.push_back(key_id);
        let entry = (served.bundle.name.clone(), key_id);
        if let Some(server) = keys.servers.get(&entry) {
            return Ok(server.clone());
        }
        let server = Arc::new(Server::with_expanded_key(
            served.bundle.server_model.clone(),
            expanded,
        )?);
        keys.servers.insert(entry, server.clone());
        Ok(server)
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
    let keys = state
        .keys
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .order
        .len();
    Json(Health {
        status: "ok".into(),
        models: state.models.len(),
        keys,
        version: env!("CARGO_PKG_VERSION").into(),
    })
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
    bytes: std::result::Result<Bytes, BytesRejection>,
) -> std::result::Result<Json<KeyReceipt>, ApiError> {
    let bytes = body(bytes)?;
    let size = bytes.len();
    let expanded = state
        .heavy(move || {
            let key = EvaluationKey::from_bytes(&bytes)?;
            let params = crate::fhe::LeveledParameters::default();
            key.expand(&params)
        })
        .await?;
    let id = expanded.id;
    let mut keys = state.keys.lock().unwrap_or_else(|p| p.into_inner());
    if keys.expanded.insert(id, Arc::new(expanded)).is_none() {
        keys.order.push_back(id);
    }
    while keys.order.len() > state.config.max_keys.max(1) {
        if let Some(old) = keys.order.pop_front() {
            keys.expanded.remove(&old);
            keys.servers.retain(|(_, k), _| *k != old);
        }
    }
    Ok(Json(KeyReceipt {
        key_id: hex(&id),
        bytes: size,
    }))
}

async fn predict(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    bytes: std::result::Result<Bytes, BytesRejection>,
) -> std::result::Result<Response, ApiError> {
    let bytes = body(bytes)?;
    let served = state.model(&name)?;
    let input = EncryptedInput::from_bytes(&bytes)?;
    let server = state.server_for(served, input.key_id)?;
    let out = state
        .heavy(move || server.infer(&input)?.to_bytes())
        .await?;
    Ok(binary(out))
}

async fn predict_batch(
    State(state): State<Arc<AppState>>,
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
    let server = state.server_for(served, key_id)?;
    let out = state
        .heavy(move || {
            let outputs: Vec<EncryptedOutput> = server
                .infer_batch(&inputs)
                .into_iter()
                .collect::<Result<_>>()?;
            wire::seal(Kind::OutputBatch, &outputs)
        })
        .await?;
    Ok(binary(out))
}

async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        variant: "NotFound",
        message: "no such endpoint (see /v1/health, /v1/models)".into(),
    }
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
    let state = Arc::new(AppState {
        models: served,
        keys: Mutex::new(Keys::default()),
        workers: Semaphore::new(config.workers.max(1)),
        config: config.clone(),
    });
    Ok(Router::new()
        .route("/v1/health", get(health))
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
        .fallback(not_found)
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .with_state(state))
}

/// Serves until `shutdown` completes, then finishes the requests in flight.
///
/// # Errors
/// `Error::Other` when the server stops on an I/O error.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::Other(format!("service stopped: {e}")))
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
            runtime.block_on(serve(listener, router, async {
                let _ = stopped.await;
            }))
        });
        Ok(Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The service's base URL, `http://` and the address, for
    /// [`crate::remote::RemoteServer::new`].
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
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
