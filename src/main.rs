//! The `fhe-ml` command line: `demo` (the main job on the shipped breast-cancer data), `eval`
//! (the same pipeline on any CSV, optionally as JSON, locally or through a service), `serve`
//! (the inference service), `export` (a model for the service), `predict` (a client of the
//! service) and `token new` (a tenant's API token for `serve --auth`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use fhe_ml::client::Client;
use fhe_ml::data::CsvOptions;
use fhe_ml::eval::{self, EvalConfig, ModelKind, Source};
use fhe_ml::fhe::OutputMode;
use fhe_ml::quant::Quantization;
use fhe_ml::remote::{RemoteOptions, RemoteServer};
use fhe_ml::service::{self, ModelBundle, ServiceConfig};
use fhe_ml::train::ensembles::GbdtParams;
use fhe_ml::train::mlp::MlpConfig;
use fhe_ml::train::trees::ForestConfig;
use fhe_ml::{Error, Result};

#[derive(Parser)]
#[command(
    name = "fhe-ml",
    version,
    about = "Encrypted inference with TFHE: train on plaintext, infer on ciphertexts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModelArg {
    Logistic,
    Linear,
    /// Multilayer perceptron classifier (ReLU by programmable bootstrapping).
    Mlp,
    /// Decision tree classifier (comparisons by programmable bootstrapping).
    Tree,
    /// Random forest classifier.
    Forest,
    /// Linear SVM classifier (C = 1; one-vs-rest for 3+ classes).
    Svm,
    /// Ridge regression (alpha = 1, scikit-learn's units).
    Ridge,
    /// Lasso regression (alpha = 1).
    Lasso,
    /// ElasticNet regression (alpha = 1, l1_ratio = 0.5).
    #[value(name = "elasticnet")]
    ElasticNet,
    /// Poisson regression, log link applied by the client (counts).
    Poisson,
    /// Gamma regression, log link (positive targets).
    Gamma,
    /// Tweedie regression, power 1.5, log link (non-negative targets).
    Tweedie,
    /// Regression tree (depth 4 on 5-bit bins).
    TreeRegressor,
    /// Random forest of regression trees (10 trees of depth 4).
    ForestRegressor,
    /// Gradient-boosted trees classifier (30 rounds of depth 3, learning rate 0.2).
    Gbdt,
    /// Gradient-boosted trees regressor (30 rounds of depth 3, learning rate 0.2).
    GbdtRegressor,
}

/// The data and its train/test split, shared by `eval`, `export` and `import`.
#[derive(Args)]
struct DataArgs {
    /// CSV with a header row and a `target` column; text columns are one-hot encoded.
    #[arg(long)]
    data: PathBuf,
    /// The CSV's delimiter (one character, or `tab`); detected from the header by default.
    #[arg(long, value_parser = parse_delimiter)]
    delimiter: Option<u8>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
}

impl DataArgs {
    /// A run of `kind` on this data and split, other settings at their defaults.
    fn config(self, kind: ModelKind) -> EvalConfig {
        let mut config = EvalConfig::new(Source::File(self.data), kind);
        config.csv = CsvOptions {
            delimiter: self.delimiter,
        };
        config.seed = self.seed;
        config.test_fraction = self.test_fraction;
        config
    }
}

/// What model to train (or import) on which data, shared by `eval` and `export`.
#[derive(Args)]
struct ModelArgs {
    #[command(flatten)]
    input: DataArgs,
    /// The family to train (not with `--onnx`).
    #[arg(
        long,
        value_enum,
        required_unless_present = "onnx",
        conflicts_with = "onnx"
    )]
    model: Option<ModelArg>,
    /// Import this ONNX model (scikit-learn via skl2onnx, XGBoost via onnxmltools, PyTorch via
    /// torch.onnx.export) instead of training: the CSV's training rows calibrate its
    /// quantization, its test rows score it.
    #[arg(long)]
    onnx: Option<PathBuf>,
    /// Quantization bits of the inputs (and weights, for linear models); default 8, and 4
    /// for trees (few-bit comparisons stay within tfhe's published failure rate).
    #[arg(long)]
    bits: Option<u32>,
    /// MLP hidden layer widths, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "32")]
    hidden: Vec<usize>,
    /// MLP activation bits (a ReLU clipped to 2^bits - 1 levels).
    #[arg(long, default_value_t = MlpConfig::default().activation_bits)]
    activation_bits: u32,
    /// MLP training epochs.
    #[arg(long, default_value_t = MlpConfig::default().epochs)]
    epochs: usize,
    /// MLP: fraction of each hidden layer's neurons pruned after three quarters of the epochs
    /// (one bootstrap fewer per inference each; 0: none).
    #[arg(long, default_value_t = MlpConfig::default().prune)]
    prune: f64,
    /// Tree depth (trees and forests: 4; gradient-boosted trees: 3).
    #[arg(long)]
    depth: Option<usize>,
    /// Trees in a forest (10), or boosting rounds (20).
    #[arg(long)]
    trees: Option<usize>,
    /// Trees and forests: prefer a feature already split on when its split removes at least
    /// 1 - this of the impurity the best split removes (each distinct feature is one
    /// comparison bootstrap; 0: plain CART).
    #[arg(long, default_value_t = ForestConfig::default().reuse)]
    feature_reuse: f64,
    /// Gradient-boosted trees' learning rate (shrinkage of each tree).
    #[arg(long, default_value_t = GbdtParams::default().learning_rate)]
    learning_rate: f64,
    /// What the server returns: `scores` (logits, probabilities), `label` (the sanitized
    /// encrypted label only: protects the model; classifiers only) or `top-K` (the K best
    /// labels, best first, sanitized; multiclass only).
    #[arg(long, default_value = "scores")]
    output: OutputMode,
}

impl ModelArgs {
    fn config(self) -> EvalConfig {
        let kind = match self.model {
            _ if self.onnx.is_some() => ModelKind::Onnx,
            Some(ModelArg::Logistic) | None => ModelKind::Logistic,
            Some(ModelArg::Linear) => ModelKind::Linear,
            Some(ModelArg::Mlp) => ModelKind::Mlp,
            Some(ModelArg::Tree) => ModelKind::Tree,
            Some(ModelArg::Forest) => ModelKind::Forest,
            Some(ModelArg::Svm) => ModelKind::Svm,
            Some(ModelArg::Ridge) => ModelKind::Ridge,
            Some(ModelArg::Lasso) => ModelKind::Lasso,
            Some(ModelArg::ElasticNet) => ModelKind::ElasticNet,
            Some(ModelArg::Poisson) => ModelKind::Poisson,
            Some(ModelArg::Gamma) => ModelKind::Gamma,
            Some(ModelArg::Tweedie) => ModelKind::Tweedie,
            Some(ModelArg::TreeRegressor) => ModelKind::TreeRegressor,
            Some(ModelArg::ForestRegressor) => ModelKind::ForestRegressor,
            Some(ModelArg::Gbdt) => ModelKind::Gbdt,
            Some(ModelArg::GbdtRegressor) => ModelKind::GbdtRegressor,
        };
        let mut config = self.input.config(kind);
        config.onnx = self.onnx;
        let linear_bits = self.bits.unwrap_or(Quantization::DEFAULT_BITS);
        config.quantization = Quantization::bits(linear_bits);
        config.mlp.hidden = self.hidden;
        config.mlp.activation_bits = self.activation_bits;
        config.mlp.epochs = self.epochs;
        config.mlp.prune = self.prune;
        config.mlp.input_bits = linear_bits;
        config.forest.depth = self.depth.unwrap_or(config.forest.depth);
        config.forest.trees = self.trees.unwrap_or(ForestConfig::forest().trees);
        config.forest.reuse = self.feature_reuse;
        config.regression_trees.depth = self.depth.unwrap_or(config.regression_trees.depth);
        config.regression_trees.trees = self.trees.unwrap_or(config.regression_trees.trees);
        config.gbdt = GbdtParams {
            trees: self.trees.unwrap_or(config.gbdt.trees),
            depth: self.depth.unwrap_or(config.gbdt.depth),
            learning_rate: self.learning_rate,
            ..config.gbdt
        };
        config.forest.input_bits = self.bits.unwrap_or(ForestConfig::default().input_bits);
        config.output = self.output;
        config
    }
}

/// How a client reaches a service that asks for a token or serves HTTPS.
#[derive(Args)]
struct RemoteArgs {
    /// The tenant's API token (`fhe-ml token new`); read from FHE_ML_TOKEN when not given.
    #[arg(long, env = "FHE_ML_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// PEM file of the CA that signed an HTTPS service's certificate (default: webpki roots).
    #[arg(long)]
    ca: Option<PathBuf>,
}

impl RemoteArgs {
    fn options(self) -> Result<RemoteOptions> {
        let ca_pem = match self.ca {
            Some(path) => Some(std::fs::read(&path).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?),
            None => None,
        };
        Ok(RemoteOptions {
            token: self.token,
            ca_pem,
        })
    }
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Add a tenant with a new token to a tenants file (created if missing); the token is
    /// printed once, alone on the last line. The file keeps only its hash.
    New {
        #[arg(long)]
        tenant: String,
        /// The tenants file `serve --auth` reads.
        #[arg(long)]
        auth: PathBuf,
        /// Requests allowed per window: `N/s`, `N/min` or `N/hour` (default: unlimited).
        #[arg(long, value_parser = parse_rate)]
        rate: Option<fhe_ml::auth::Quota>,
        /// Rows the tenant may score per model per window: `N/hour` or `N/day` (default:
        /// unlimited).
        #[arg(long, value_parser = parse_budget)]
        budget: Option<fhe_ml::auth::Quota>,
        /// An operator's tenant: may read `/metrics` (every tenant's traffic).
        #[arg(long)]
        admin: bool,
    },
}

fn parse_rate(s: &str) -> std::result::Result<fhe_ml::auth::Quota, String> {
    fhe_ml::auth::parse_rate(s).map_err(|e| e.to_string())
}

fn parse_budget(s: &str) -> std::result::Result<fhe_ml::auth::Quota, String> {
    fhe_ml::auth::parse_budget(s).map_err(|e| e.to_string())
}

#[derive(Subcommand)]
enum Command {
    /// Train, quantize, encrypt, infer and decrypt on the shipped breast-cancer data; print a
    /// table and write charts.
    Demo {
        /// Folder for the SVG charts.
        #[arg(long, default_value = "fhe-ml-demo")]
        out: PathBuf,
        /// Quantization bits for inputs and weights.
        #[arg(long, default_value_t = Quantization::DEFAULT_BITS)]
        bits: u32,
    },
    /// Run the pipeline on any CSV whose last column is `target`.
    Eval {
        #[command(flatten)]
        model: ModelArgs,
        /// Evaluate at most this many test rows.
        #[arg(long)]
        limit: Option<usize>,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
        /// Also write the charts into this folder.
        #[arg(long)]
        charts: Option<PathBuf>,
        /// Infer through this service (`fhe-ml serve`), which must serve the same model as
        /// `{dataset}-{model}`.
        #[arg(long)]
        server: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Serve models over HTTP: trained at start-up from the shipped data, or read from a
    /// folder of `fhe-ml export` files.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// Folder of `*.fhem` model files.
        #[arg(long)]
        models: Option<PathBuf>,
        #[command(flatten)]
        keys: KeyArgs,
        /// Seconds to keep serving after SIGTERM or Ctrl-C with `/v1/ready` answering 503, so
        /// a load balancer stops sending requests before the replica stops.
        #[arg(long, default_value_t = 0)]
        drain_seconds: u64,
        /// Tenants file (`fhe-ml token new`): every route but `/v1/health` and `/v1/ready`
        /// (the probes) then needs a token, and
        /// the tenants' quotas apply.
        #[arg(long)]
        auth: Option<PathBuf>,
        /// Serve HTTPS with this certificate chain (PEM); needs `--tls-key`.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The certificate's private key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// API tokens for `serve --auth`.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Train and compile a model and write it for `serve --models DIR`.
    Export {
        #[command(flatten)]
        model: ModelArgs,
        /// Folder to write `{name}.fhem` into.
        #[arg(long)]
        out: PathBuf,
        /// The model's name in the service (letters, digits, `-`, `_`, `.`; at most 64);
        /// default `{dataset}-{model}` from the file name, made valid.
        #[arg(long)]
        name: Option<String>,
    },
    /// Import an ONNX model (scikit-learn, XGBoost, PyTorch), calibrate and compile it on a
    /// CSV's training rows, and write it for `serve --models DIR`: `export` for a model
    /// trained elsewhere.
    Import {
        /// The ONNX file.
        #[arg(long)]
        onnx: PathBuf,
        /// The data: its training rows (the split `eval` uses) calibrate the quantization.
        #[command(flatten)]
        input: DataArgs,
        /// Input bits: linear models and networks (default 8); tree ensembles take the fewest
        /// that keep their comparisons exact (2 to 5) unless 2 to 5 are given.
        #[arg(long)]
        bits: Option<u32>,
        /// What the server returns: `scores`, `label` or `top-K` (as for `eval`).
        #[arg(long, default_value = "scores")]
        output: OutputMode,
        /// Folder to write `{name}.fhem` into.
        #[arg(long)]
        out: PathBuf,
        /// The model's name in the service; default `{dataset}-{file stem}`.
        #[arg(long)]
        name: Option<String>,
    },
    /// Print the train/test split `eval` uses (row indices of the CSV's data rows, 0-based) and
    /// the encoded feature names (`column=category` for one-hot features) as JSON, so other
    /// tools can evaluate on exactly the same rows and features.
    Split {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 0.2)]
        test_fraction: f64,
        /// The target is a real value (a regression split: not stratified).
        #[arg(long)]
        regression: bool,
        /// The CSV's delimiter (one character, or `tab`); detected by default.
        #[arg(long, value_parser = parse_delimiter)]
        delimiter: Option<u8>,
    },
    /// Score a CSV of any size through a service, streaming: encrypts in chunks, keeps a few
    /// requests in flight, writes `row,prediction` lines in input order, retries failures
    /// that heal, and resumes from `{output}.checkpoint` when run again after being stopped.
    /// With `--model-file` instead of `--server`/`--model`: the model's clear twin, locally.
    Batch {
        /// The service (or its load balancer).
        #[arg(long, required_unless_present = "model_file", requires = "model")]
        server: Option<String>,
        /// The model's name in the service.
        #[arg(long, requires = "server")]
        model: Option<String>,
        /// Score with this model file's (`fhe-ml export`) clear twin: no service, no
        /// encryption, the same output.
        #[arg(long, conflicts_with_all = ["server", "model"])]
        model_file: Option<PathBuf>,
        /// CSV with a header row naming the model's columns (any order; others ignored).
        #[arg(long)]
        input: PathBuf,
        /// The predictions CSV (`row,prediction`, and `top_K` in top-K mode).
        #[arg(long)]
        output: PathBuf,
        /// Rows per request (default: 256 for leveled models, 16 for bootstrapped ones).
        #[arg(long)]
        chunk: Option<usize>,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 4)]
        in_flight: usize,
        /// Retries of a request after failures that can heal (backoff 0.2 s to 5 s).
        #[arg(long, default_value_t = 10)]
        retries: u32,
        /// Replace an existing output that has no checkpoint.
        #[arg(long)]
        overwrite: bool,
        /// Print the run's figures as one JSON object on stdout.
        #[arg(long)]
        json: bool,
        /// The CSV's delimiter (one character, or `tab`); detected by default.
        #[arg(long, value_parser = parse_delimiter)]
        delimiter: Option<u8>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Encrypt the rows of a CSV locally, infer on a service, decrypt locally, print labels.
    Predict {
        #[arg(long)]
        server: String,
        #[arg(long)]
        model: String,
        /// CSV with a header row naming the model's columns, in any order (other columns,
        /// such as `target`, are ignored with a note).
        #[arg(long)]
        input: PathBuf,
        /// The CSV's delimiter (one character, or `tab`); detected by default.
        #[arg(long, value_parser = parse_delimiter)]
        delimiter: Option<u8>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

fn progress() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("encrypted inference {bar:40} {pos}/{len} rows ({eta})")
            .expect("a valid template"),
    );
    bar
}

fn load_models(dir: &Path) -> Result<Vec<ModelBundle>> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut models = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| Error::Io {
                path: dir.to_path_buf(),
                source,
            })?
            .path();
        if path.extension().is_some_and(|e| e == "fhem") {
            let bytes = std::fs::read(&path).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            models.push(
                ModelBundle::from_bytes(&bytes)
                    .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?,
            );
        }
    }
    if models.is_empty() {
        return Err(Error::Other(format!(
            "no *.fhem model files in {}",
            dir.display()
        )));
    }
    Ok(models)
}

/// Where evaluation keys are kept (`serve`).
#[derive(clap::Args, Debug, Clone)]
struct KeyArgs {
    /// The key store: `memory` (this process) or a Redis URL
    /// (`redis://[:PASSWORD@]HOST:PORT/DB`) that every replica shares, so any replica serves
    /// any client.
    #[arg(long, default_value = "memory", env = "FHE_ML_KEY_STORE")]
    key_store: String,
    /// Bound of the in-process key store, in MiB (about 29 MiB per key).
    #[arg(long, default_value_t = ServiceConfig::default().key_store_mib)]
    key_store_mib: usize,
    /// Seconds a key stays in a Redis store after its last use.
    #[arg(long, default_value_t = ServiceConfig::default().key_ttl_s)]
    key_ttl: u64,
    /// Bound of this replica's cache of expanded keys, in MiB (about 86 MiB per key).
    #[arg(long, default_value_t = ServiceConfig::default().key_cache_mib)]
    key_cache_mib: usize,
}

/// What `serve` was asked for.
struct ServeArgs {
    addr: String,
    models: Option<PathBuf>,
    keys: KeyArgs,
    drain_seconds: u64,
    auth: Option<PathBuf>,
    tls: Option<(PathBuf, PathBuf)>,
}

fn serve(args: ServeArgs) -> Result<()> {
    let ServeArgs {
        addr,
        models,
        keys,
        drain_seconds,
        auth,
        tls,
    } = args;
    // Key buffers (tens of MiB, allocated and freed on every key upload or fetch) always go to
    // mmap, so freeing one gives it back to the system: measured with 7 keys through a 512 MiB
    // cache, resident memory settles at the cache plus about 30 MiB with this, and about
    // 190 MiB more without it (glibc's default threshold rises to 32 MiB after the first large
    // free, and what is then freed inside its heaps stays resident).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a parameter of glibc's allocator; any threshold is valid.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
    // Logs: one line per request with its id, route, status, latency and tenant (RUST_LOG
    // overrides the level); never a token or a ciphertext.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let tenants = match &auth {
        Some(path) => Some(std::sync::Arc::new(fhe_ml::auth::Tenants::load(path)?)),
        None => None,
    };
    let tls = match tls {
        Some((cert, key)) => {
            let pem = service::TlsPem::load(&cert, &key)?;
            pem.server_config()?;
            Some(pem)
        }
        None => None,
    };
    let models = match models {
        Some(dir) => load_models(&dir)?,
        None => {
            eprintln!("training the default models on the shipped data...");
            service::default_models()?
        }
    };
    let names: Vec<String> = models.iter().map(|m| m.name.clone()).collect();
    if let Some(tenants) = &tenants {
        eprintln!("authentication on: {} tenant(s)", tenants.len());
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    // What the log shows of the store (a Redis password never).
    let store_shown =
        fhe_ml::keystore::open(&keys.key_store, keys.key_store_mib, keys.key_ttl)?.describe();
    let cache_mib = keys.key_cache_mib;
    let config = ServiceConfig {
        key_store: keys.key_store,
        key_store_mib: keys.key_store_mib,
        key_ttl_s: keys.key_ttl,
        key_cache_mib: keys.key_cache_mib,
        tenants,
        tls: tls.clone(),
        ..ServiceConfig::default()
    };
    let readiness = config.readiness.clone();
    let router = service::router(models, config)?;
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| Error::Other(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| Error::Other(format!("cannot listen on {addr}: {e}")))?;
        eprintln!(
            "serving {} on {scheme}://{} (Ctrl-C stops)",
            names.join(", "),
            listener
                .local_addr()
                .map_err(|e| Error::Other(e.to_string()))?
        );
        eprintln!(
            "keys: store {store_shown}, cache of expanded keys {cache_mib} MiB; drain {drain_seconds} s after SIGTERM"
        );
        // On a signal: readiness off, keep serving while load balancers notice, then stop
        // taking connections and finish the requests in flight.
        let shutdown = async move {
            service::shutdown_signal().await;
            readiness.drain();
            if drain_seconds > 0 {
                eprintln!("draining: /v1/ready answers 503 for {drain_seconds} s, then stopping");
                tokio::time::sleep(std::time::Duration::from_secs(drain_seconds)).await;
            }
        };
        service::serve(listener, router, tls, shutdown).await
    })
}

/// Compiles what `config` describes (trained, or imported with `ModelKind::Onnx`) and writes
/// it as `{name}.fhem` into `out` for `serve --models`.
fn export(config: EvalConfig, out: &Path, name: Option<String>) -> Result<()> {
    let Source::File(path) = &config.source else {
        unreachable!("export reads a file")
    };
    if let Some(name) = &name {
        service::check_model_name(name)?;
    }
    let table = fhe_ml::data::load_csv_with(path, config.csv)?;
    let t = std::time::Instant::now();
    let compiled = eval::compile_model(&config, &table)?;
    let compile_ms = t.elapsed().as_secs_f64() * 1e3;
    let name = name.unwrap_or_else(|| match &config.onnx {
        Some(onnx) => eval::family_service_name(
            &table.name,
            &onnx
                .file_stem()
                .map_or("onnx".into(), |s| s.to_string_lossy()),
            config.output,
        ),
        None => eval::service_name(&table.name, config.model, config.output),
    });
    service::check_model_name(&name)?;
    let bundle = ModelBundle::new(&name, &compiled);
    std::fs::create_dir_all(out).map_err(|source| Error::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let file = out.join(format!("{name}.fhem"));
    std::fs::write(&file, bundle.to_bytes()?).map_err(|source| Error::Io {
        path: file.clone(),
        source,
    })?;
    println!(
        "{}: {} (compiled in {compile_ms:.0} ms)",
        file.display(),
        compiled.architecture()
    );
    Ok(())
}

fn parse_delimiter(s: &str) -> std::result::Result<u8, String> {
    fhe_ml::data::parse_delimiter(s).map_err(|e| e.to_string())
}

fn predict(
    server: String,
    model: String,
    input: PathBuf,
    delimiter: Option<u8>,
    remote: RemoteOptions,
) -> Result<()> {
    let service = RemoteServer::connect(&server, &remote)?;
    let spec = service.client_spec(&model)?;
    let read = fhe_ml::data::load_feature_rows(&input, &spec.schema, CsvOptions { delimiter })?;
    if !read.ignored.is_empty() {
        eprintln!(
            "note: ignoring column(s) the model does not read: {}",
            read.ignored.join(", ")
        );
    }
    let table = read.rows;
    let client = Client::new(spec)?;
    if client.spec().needs_evaluation_key {
        service.upload_key(&client.evaluation_key()?)?;
    }
    let inputs: Vec<_> = table
        .iter()
        .map(|row| client.encrypt(row))
        .collect::<Result<_>>()?;
    let outputs = service.predict_batch(&model, &inputs)?;
    // A top-K model also prints its ranking, best first, space-separated (as `batch`).
    let top = matches!(client.spec().output, OutputMode::TopK(_));
    println!("{}", fhe_ml::batch::header(client.spec().output));
    for (i, out) in outputs.iter().enumerate() {
        let scored = fhe_ml::batch::Scored {
            prediction: client.decrypt(out)?,
            ranked: if top {
                Some(client.decrypt_labels(out)?)
            } else {
                None
            },
        };
        let line = fhe_ml::batch::format_line(i as u64, &scored, &client.spec().decoder)?;
        println!("{line}");
    }
    if client.clipped_count() > 0 {
        eprintln!(
            "{} feature value(s) were outside the training range and clipped",
            client.clipped_count()
        );
    }
    Ok(())
}

/// What `batch` was asked for.
struct BatchArgs {
    target: BatchTarget,
    input: PathBuf,
    output: PathBuf,
    options: fhe_ml::batch::BatchOptions,
    json: bool,
}

enum BatchTarget {
    Remote {
        server: String,
        model: String,
        remote: RemoteOptions,
    },
    Clear(PathBuf),
}

fn batch(args: BatchArgs) -> Result<()> {
    let BatchArgs {
        target,
        input,
        output,
        options,
        json,
    } = args;
    let report = match target {
        BatchTarget::Remote {
            server,
            model,
            remote,
        } => {
            let service = RemoteServer::connect(&server, &remote)?;
            fhe_ml::batch::predict_csv(&service, &model, &input, &output, &options)?
        }
        BatchTarget::Clear(file) => {
            let bytes = std::fs::read(&file).map_err(|source| Error::Io {
                path: file.clone(),
                source,
            })?;
            let bundle = ModelBundle::from_bytes(&bytes)
                .map_err(|e| Error::Other(format!("{}: {e}", file.display())))?;
            fhe_ml::batch::predict_csv_clear(&bundle, &input, &output, &options)?
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| Error::Other(e.to_string()))?
        );
    }
    let resumed = if report.resumed_from > 0 {
        format!(" (resumed at row {})", report.resumed_from)
    } else {
        String::new()
    };
    eprintln!(
        "{}: {} rows{resumed} in {:.1} s, {} rows/s; {} requests, {} retried, {} key upload(s)",
        output.display(),
        report.rows,
        report.seconds,
        // Slow models (bootstrapped ones: a few rows a second) keep a decimal.
        if report.rows_per_s < 100.0 {
            format!("{:.1}", report.rows_per_s)
        } else {
            format!("{:.0}", report.rows_per_s)
        },
        report.requests,
        report.retried,
        report.key_uploads
    );
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo { out, bits } => {
            let mut config = EvalConfig::new(Source::BuiltinBreastCancer, ModelKind::Logistic);
            config.quantization = Quantization::bits(bits);
            let bar = progress();
            let report = eval::run_with_progress(&config, &bar)?;
            bar.finish_and_clear();
            println!("{}", report.to_table());
            let paths = fhe_ml::plots::write_charts(&report, &out)?;
            println!("charts written to {}/:", out.display());
            for p in paths {
                println!("  {}", p.display());
            }
        }
        Command::Eval {
            model,
            limit,
            json,
            charts,
            server,
            remote,
        } => {
            let mut config = model.config();
            config.limit = limit;
            config.server = server;
            config.remote = remote.options()?;
            let bar = progress();
            let report = eval::run_with_progress(&config, &bar)?;
            bar.finish_and_clear();
            if json {
                println!("{}", report.to_json());
                for w in &report.warnings {
                    eprintln!("warning: {w}");
                }
            } else {
                println!("{}", report.to_table());
            }
            if let Some(dir) = charts {
                fhe_ml::plots::write_charts(&report, &dir)?;
                eprintln!("charts written to {}/", dir.display());
            }
        }
        Command::Serve {
            addr,
            models,
            keys,
            drain_seconds,
            auth,
            tls_cert,
            tls_key,
        } => serve(ServeArgs {
            addr,
            models,
            keys,
            drain_seconds,
            auth,
            tls: tls_cert.zip(tls_key),
        })?,
        Command::Batch {
            server,
            model,
            model_file,
            input,
            output,
            chunk,
            in_flight,
            retries,
            overwrite,
            json,
            delimiter,
            remote,
        } => {
            let target = match (model_file, server, model) {
                (Some(file), _, _) => BatchTarget::Clear(file),
                (None, Some(server), Some(model)) => BatchTarget::Remote {
                    server,
                    model,
                    remote: remote.options()?,
                },
                _ => {
                    return Err(Error::Input(
                        "give --server and --model, or --model-file".into(),
                    ))
                }
            };
            batch(BatchArgs {
                target,
                input,
                output,
                options: fhe_ml::batch::BatchOptions {
                    chunk_rows: chunk,
                    in_flight,
                    max_retries: retries,
                    delimiter,
                    overwrite,
                    progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
                },
                json,
            })?
        }
        Command::Token(TokenCommand::New {
            tenant,
            auth,
            rate,
            budget,
            admin,
        }) => {
            let token = fhe_ml::auth::add_tenant_with_role(&auth, &tenant, rate, budget, admin)?;
            eprintln!(
                "tenant {tenant} added to {}; its token follows (shown once, keep it secret):",
                auth.display()
            );
            println!("{token}");
        }
        Command::Export { model, out, name } => export(model.config(), &out, name)?,
        Command::Import {
            onnx,
            input,
            bits,
            output,
            out,
            name,
        } => {
            let mut config = input.config(ModelKind::Onnx);
            config.onnx = Some(onnx);
            config.quantization = Quantization::bits(bits.unwrap_or(Quantization::DEFAULT_BITS));
            config.output = output;
            export(config, &out, name)?
        }
        Command::Predict {
            server,
            model,
            input,
            delimiter,
            remote,
        } => predict(server, model, input, delimiter, remote.options()?)?,
        Command::Split {
            data,
            seed,
            test_fraction,
            regression,
            delimiter,
        } => {
            let table = fhe_ml::data::load_csv_with(&data, CsvOptions { delimiter })?;
            let (train, test) = if regression {
                let s = table.split_regression(test_fraction, seed)?;
                (s.train_index, s.test_index)
            } else {
                let s = table.split(test_fraction, seed)?;
                (s.train_index, s.test_index)
            };
            println!(
                "{}",
                serde_json::json!({ "dataset": table.name, "seed": seed, "test_fraction": test_fraction, "features": table.feature_names, "train": train, "test": test })
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    // Any panic would be a bug; still report it as one line, without a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: internal error: {info}");
    }));
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
