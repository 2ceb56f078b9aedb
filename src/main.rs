//! The `fhe-ml` command line: `demo` (the main job on the shipped breast-cancer data) and
//! `eval` (the same pipeline on any CSV, optionally as JSON).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use fhe_ml::eval::{self, EvalConfig, ModelKind, Source};
use fhe_ml::quant::Quantization;
use fhe_ml::train::mlp::MlpConfig;
use fhe_ml::train::trees::ForestConfig;

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
        #[arg(long)]
        data: PathBuf,
        #[arg(long, value_enum)]
        model: ModelArg,
        /// Quantization bits of the inputs (and weights, for linear models); default 8, and 4
        /// for trees (few-bit comparisons stay within tfhe's published failure rate).
        #[arg(long)]
        bits: Option<u32>,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 0.2)]
        test_fraction: f64,
        /// Evaluate at most this many test rows.
        #[arg(long)]
        limit: Option<usize>,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
        /// Also write the charts into this folder.
        #[arg(long)]
        charts: Option<PathBuf>,
        /// MLP hidden layer widths, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "32")]
        hidden: Vec<usize>,
        /// MLP activation bits (a ReLU clipped to 2^bits - 1 levels).
        #[arg(long, default_value_t = MlpConfig::default().activation_bits)]
        activation_bits: u32,
        /// MLP training epochs.
        #[arg(long, default_value_t = MlpConfig::default().epochs)]
        epochs: usize,
        /// Tree and forest maximum depth.
        #[arg(long, default_value_t = ForestConfig::default().depth)]
        depth: usize,
        /// Trees in a forest.
        #[arg(long, default_value_t = ForestConfig::forest().trees)]
        trees: usize,
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

fn run(cli: Cli) -> fhe_ml::Result<()> {
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
            data,
            model,
            bits,
            seed,
            test_fraction,
            limit,
            json,
            charts,
            hidden,
            activation_bits,
            epochs,
            depth,
            trees,
        } => {
            let kind = match model {
                ModelArg::Logistic => ModelKind::Logistic,
                ModelArg::Linear => ModelKind::Linear,
                ModelArg::Mlp => ModelKind::Mlp,
                ModelArg::Tree => ModelKind::Tree,
                ModelArg::Forest => ModelKind::Forest,
            };
            let mut config = EvalConfig::new(Source::File(data), kind);
            let linear_bits = bits.unwrap_or(Quantization::DEFAULT_BITS);
            config.quantization = Quantization::bits(linear_bits);
            config.mlp.hidden = hidden;
            config.mlp.activation_bits = activation_bits;
            config.mlp.epochs = epochs;
            config.mlp.input_bits = linear_bits;
            config.forest.depth = depth;
            config.forest.trees = trees;
            config.forest.input_bits = bits.unwrap_or(ForestConfig::default().input_bits);
            config.seed = seed;
            config.test_fraction = test_fraction;
            config.limit = limit;
            let bar = progress();
            let report = eval::run_with_progress(&config, &bar)?;
            bar.finish_and_clear();
            if json {
                println!("{}", report.to_json());
            } else {
                println!("{}", report.to_table());
            }
            if let Some(dir) = charts {
                fhe_ml::plots::write_charts(&report, &dir)?;
                eprintln!("charts written to {}/", dir.display());
            }
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
