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

/// The payload of a sealed blob (between the 11-byte header and the 16-byte digest): what the
/// targets seal again when their pick byte asks for it.
fn payload(blob: &[u8]) -> &[u8] {
    &blob[11..blob.len() - 16]
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
    // wire: pick % 8 is the kind; with bit 7 the target seals the payload itself.
    let batch = seal(Kind::InputBatch, &vec![input.clone(); 2])?;
    let blobs = [
        ("input", 0, input.to_bytes()?),
        ("output", 1, output.to_bytes()?),
        ("server-model", 2, model.server_model().to_bytes()?),
        ("server-model-label", 2, label.server_model().to_bytes()?),
        ("client-spec", 3, model.client_spec().to_bytes()?),
        ("bundle", 5, ModelBundle::new("bc", &model).to_bytes()?),
        ("input-batch", 6, batch.clone()),
        (
            "output-batch",
            7,
            seal(Kind::OutputBatch, &vec![output; 2])?,
        ),
    ];
    let wire = seeds.join("wire");
    for (name, pick, blob) in &blobs {
        write(&wire, name, &with_pick(*pick, blob))?;
        write(
            &wire,
            &format!("{name}-payload"),
            &with_pick(pick | 0x80, payload(blob)),
        )?;
    }
    // service: pick % 6 is the route; bit 6 seals the payload, bit 7 uses the router with
    // tenants, bit 5 adds the fuzz tenant's token.
    let service = seeds.join("service");
    let label_client = Client::new_seeded(label.client_spec(), 8)?;
    let label_input = label_client.encrypt(&split.test_rows()[0])?.to_bytes()?;
    for (name, pick, blob) in [
        ("predict", 1u8, input.to_bytes()?),
        ("predict-batch", 2, batch),
        ("predict-label", 3, label_input),
    ] {
        write(&service, name, &with_pick(pick, &blob))?;
        write(
            &service,
            &format!("{name}-payload"),
            &with_pick(pick | 0x40, payload(&blob)),
        )?;
        write(
            &service,
            &format!("{name}-tenant"),
            &with_pick(pick | 0x40 | 0x80 | 0x20, payload(&blob)),
        )?;
    }
    write(&service, "model-name", &with_pick(5, b"bc"))?;
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
