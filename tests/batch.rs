//! `fhe-ml batch` and `RemoteServer::predict_stream` against an in-process service: a job
//! killed with SIGKILL resumes to the very bytes of the clear twin's output, a bad row keeps
//! what was scored before it, a finished output is not overwritten by mistake, and a service
//! that lost the client's key gets it again without the caller doing anything.

use std::path::{Path, PathBuf};

mod common;
use common::replicate;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fhe_ml::batch::{checkpoint_path, BatchOptions};
use fhe_ml::client::Client;
use fhe_ml::data::load_csv;
use fhe_ml::eval::{compile_model, EvalConfig, ModelKind, Source};
use fhe_ml::remote::RemoteServer;
use fhe_ml::service::{Background, ModelBundle, ServiceConfig};

const BIN: &str = env!("CARGO_BIN_EXE_fhe-ml");

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fhe-ml-batch-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn bundle(name: &str, data: &str, kind: ModelKind) -> ModelBundle {
    let table = load_csv(data).unwrap();
    let model = compile_model(&EvalConfig::new(Source::File(data.into()), kind), &table).unwrap();
    ModelBundle::new(name, &model)
}

fn batch(args: &[&str]) -> std::process::Output {
    Command::new(BIN).arg("batch").args(args).output().unwrap()
}

fn checkpointed(output: &Path) -> u64 {
    std::fs::read(checkpoint_path(output))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["rows"].as_u64())
        .unwrap_or(0)
}

#[test]
fn a_killed_batch_resumes_to_the_bytes_of_an_uninterrupted_run() {
    let dir = temp_dir("resume");
    let name = "breast_cancer-logistic";
    let model = bundle(name, "data/breast_cancer.csv", ModelKind::Logistic);
    let model_file = dir.join("model.fhem");
    std::fs::write(&model_file, model.to_bytes().unwrap()).unwrap();
    let service = Background::start(vec![model], ServiceConfig::default(), "127.0.0.1:0").unwrap();
    let input = dir.join("rows.csv");
    replicate("data/breast_cancer.csv", 30_000, &input, None);
    let (input_s, expected) = (input.to_str().unwrap(), dir.join("expected.csv"));
    let clear = batch(&[
        "--model-file",
        model_file.to_str().unwrap(),
        "--input",
        input_s,
        "--output",
        expected.to_str().unwrap(),
    ]);
    assert!(clear.status.success(), "{clear:?}");
    let output = dir.join("out.csv");
    let out_s = output.to_str().unwrap();
    let url = service.url();
    let args = [
        "--server",
        &url,
        "--model",
        name,
        "--input",
        input_s,
        "--output",
        out_s,
        "--chunk",
        "16",
        "--in-flight",
        "2",
        "--json",
    ];
    let mut child = Command::new(BIN)
        .arg("batch")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while checkpointed(&output) == 0 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before a checkpoint"
        );
        assert!(start.elapsed() < Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let killed_at = checkpointed(&output);
    assert!((1..30_000).contains(&killed_at), "killed at {killed_at}");

    let resumed = batch(&args);
    assert!(resumed.status.success(), "{resumed:?}");
    let report: fhe_ml::batch::BatchReport = serde_json::from_slice(&resumed.stdout).unwrap();
    assert_eq!(report.rows, 30_000);
    assert!(report.resumed_from >= killed_at, "{report:?}");
    assert_eq!(
        std::fs::read(&output).unwrap(),
        std::fs::read(&expected).unwrap(),
        "the resumed output is the clear twin's, byte for byte"
    );
    assert!(!checkpoint_path(&output).exists());

    // A finished output is not replaced by mistake; --overwrite replaces it.
    let again = batch(&args);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--overwrite"));
    let mut overwrite = args.to_vec();
    overwrite.push("--overwrite");
    assert!(batch(&overwrite).status.success());
    assert_eq!(
        std::fs::read(&output).unwrap(),
        std::fs::read(&expected).unwrap()
    );
    service.stop().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_row_names_its_line_and_keeps_the_rows_before_it() {
    let dir = temp_dir("bad");
    let name = "breast_cancer-logistic";
    let model = bundle(name, "data/breast_cancer.csv", ModelKind::Logistic);
    let model_file = dir.join("model.fhem");
    std::fs::write(&model_file, model.to_bytes().unwrap()).unwrap();
    let input = dir.join("rows.csv");
    // Data row 5050 is line 5052 of the file (the header is line 1), in the middle of a chunk.
    replicate("data/breast_cancer.csv", 6_000, &input, Some(5_050));
    let output = dir.join("out.csv");
    let args = [
        "--model-file",
        model_file.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--chunk",
        "100",
    ];
    let failed = batch(&args);
    assert!(!failed.status.success());
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(err.contains("line 5052"), "{err}");
    // Every row before the bad one is kept, and the checkpoint says so.
    assert_eq!(checkpointed(&output), 5_050);
    let text = std::fs::read_to_string(&output).unwrap();
    assert_eq!(text.lines().count(), 1 + 5_050);
    // Run again on the same file: it resumes at the bad row and fails there again, adding
    // nothing twice.
    let again = batch(&args);
    assert!(String::from_utf8_lossy(&again.stderr).contains("line 5052"));
    assert_eq!(std::fs::read_to_string(&output).unwrap(), text);
    // Another input is another job: its checkpoint is refused, not misapplied.
    replicate("data/breast_cancer.csv", 6_000, &input, None);
    let other = batch(&args);
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("belongs to another job"),
        "{other:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The service is replaced mid-stream by one that holds no key (a restart with the in-memory
/// store): the stream uploads the key again by itself, and every prediction equals the clear
/// twin's.
#[test]
fn a_stream_uploads_its_key_again_to_a_service_that_lost_it() {
    let name = "breast_cancer-tree";
    let model = bundle(name, "data/breast_cancer.csv", ModelKind::Tree);
    let first =
        Background::start(vec![model.clone()], ServiceConfig::default(), "127.0.0.1:0").unwrap();
    let addr = first.addr.to_string();
    let remote = RemoteServer::new(&first.url()).unwrap();
    let client = Client::new(remote.client_spec(name).unwrap()).unwrap();
    let table = load_csv("data/breast_cancer.csv").unwrap();
    let rows: Vec<Vec<f64>> = (0..12).map(|i| table.features.row(i).to_vec()).collect();
    let options = BatchOptions {
        chunk_rows: Some(2),
        in_flight: 1,
        ..BatchOptions::default()
    };
    let mut service = Some(first);
    let mut got = Vec::new();
    let report = remote
        .predict_stream(
            name,
            &client,
            rows.clone().into_iter().map(Ok),
            &options,
            |i, scored| {
                got.push((i, scored.prediction.class_index()));
                if i == 1 {
                    // Same address, no keys.
                    service.take().unwrap().stop().unwrap();
                    service = Some(
                        Background::start(vec![model.clone()], ServiceConfig::default(), &addr)
                            .unwrap(),
                    );
                }
                Ok(())
            },
        )
        .unwrap();
    assert_eq!(report.rows, 12);
    assert_eq!(report.key_uploads, 2, "{report:?}");
    let spec = &model.client_spec;
    for (i, class) in got {
        let q = spec.quantizer.quantize(&rows[i as usize]);
        let scores = model.server_model.program.simulate(&q.values).unwrap();
        assert_eq!(
            class,
            spec.decoder.decode(&scores).unwrap().class_index(),
            "row {i}"
        );
    }
    service.unwrap().stop().unwrap();
}
