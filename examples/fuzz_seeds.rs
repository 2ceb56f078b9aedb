//! Writes the fuzz targets' seed corpus (`fuzz/seeds/TARGET/`): one valid input of every kind
//! each target reads, so the fuzzers start past the envelope checks. Run from the repository
//! root: `cargo run --release --example fuzz_seeds`.

use std::path::Path;

use fhe_ml::client::Client;
use fhe_ml::fhe::wire::{seal, Kind};
use fhe_ml::fhe::OutputMode;
use fhe_ml::service::ModelBundle;
use fhe_ml::Options;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> fhe_ml::Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| fhe_ml::Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(name);
    std::fs::write(&path, bytes).map_err(|source| fhe_ml::Error::Io { path, source })
}

fn with_pick(pick: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![pick];
    out.extend_from_slice(bytes);
    out
}

fn main() -> fhe_ml::Result<()> {
    let seeds = Path::new("fuzz/seeds");
    // The model the service target serves: breast cancer, logistic, scores.
    let table = fhe_ml::data::parse_csv_str(fhe_ml::data::BREAST_CANCER_CSV, "bc")?;
    let split = table.split(0.2, 42)?;
    let fitted = fhe_ml::train::fit_logistic(&split)?;
    let model = fhe_ml::compile(&fitted, &split, Options::default())?;
    let label = model.clone().with_output(OutputMode::Label)?;
    let client = Client::new_seeded(model.client_spec(), 7)?;
    let (_, server) = model.keygen()?;
    let input = client.encrypt(&split.test_rows()[0])?;
    let output = server.infer(&input)?;
    let wire = seeds.join("wire");
    write(&wire, "input", &with_pick(0, &input.to_bytes()?))?;
    write(&wire, "output", &with_pick(1, &output.to_bytes()?))?;
    write(
        &wire,
        "server-model",
        &with_pick(2, &model.server_model().to_bytes()?),
    )?;
    write(
        &wire,
        "server-model-label",
        &with_pick(2, &label.server_model().to_bytes()?),
    )?;
    write(
        &wire,
        "client-spec",
        &with_pick(3, &model.client_spec().to_bytes()?),
    )?;
    write(
        &wire,
        "bundle",
        &with_pick(5, &ModelBundle::new("bc", &model).to_bytes()?),
    )?;
    let batch = seal(Kind::InputBatch, &vec![input.clone(); 2])?;
    write(&wire, "input-batch", &with_pick(6, &batch))?;
    write(
        &wire,
        "output-batch",
        &with_pick(7, &seal(Kind::OutputBatch, &vec![output; 2])?),
    )?;
    let service = seeds.join("service");
    write(&service, "predict", &with_pick(1, &input.to_bytes()?))?;
    write(&service, "predict-batch", &with_pick(2, &batch))?;
    write(&service, "model-name", &with_pick(4, b"bc"))?;
    let csv = seeds.join("csv");
    let head: String = fhe_ml::data::BREAST_CANCER_CSV
        .lines()
        .take(12)
        .collect::<Vec<_>>()
        .join("\n");
    write(&csv, "numbers", head.as_bytes())?;
    write(
        &csv,
        "categories-semicolon",
        b"age;city;income;target\n31;Lyon;1,5;yes\n45;\"Paris\";2,25;no\n;Nice;3;yes\n52;Lyon;NA;no\n",
    )?;
    write(
        &csv,
        "quoted-tab",
        b"a\tb\ttarget\n\"1\"\t2.5\t0\n3\t\"x,y\"\t1\n",
    )?;
    let tenants = seeds.join("tenants");
    write(
        &tenants,
        "two",
        format!(
            "# tenants\nalice blake3:{} rate=600/min budget=10000/day\nbob blake3:{}\n",
            "ab".repeat(32),
            "cd".repeat(32)
        )
        .as_bytes(),
    )?;
    println!("seeds written to {}", seeds.display());
    Ok(())
}
