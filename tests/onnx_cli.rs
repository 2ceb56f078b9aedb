//! The ONNX import through the command line: `fhe-ml import` → `fhe-ml serve --models` →
//! `fhe-ml predict` on a scikit-learn forest, `eval --onnx` reports, and refused models and
//! files get one line on stderr, a non-zero exit and no panic.

mod common;

use common::{fhe_ml, fhe_ml_ok as ok};
use fhe_ml::prelude::*;

/// An imported scikit-learn forest served and queried end to end: the service's labels equal
/// the clear twin's, computed here from the same file and data.
#[test]
fn import_serve_predict_a_scikit_learn_forest() {
    let dir = std::env::temp_dir().join(format!("fhe-ml-onnx-cli-{}", std::process::id()));
    let onnx = "tests/fixtures/onnx/bc-forest.onnx";
    let out = ok(&[
        "import",
        "--onnx",
        onnx,
        "--data",
        "data/breast_cancer.csv",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("breast_cancer-bc-forest.fhem") && text.contains("imported 10-tree"),
        "{text}"
    );
    let serve = common::Serve::start(dir.to_str().unwrap());
    // Twelve rows of the data (their target column ignored by predict).
    let rows = dir.join("rows.csv");
    let data = std::fs::read_to_string("data/breast_cancer.csv").unwrap();
    std::fs::write(&rows, data.lines().take(13).collect::<Vec<_>>().join("\n")).unwrap();
    let out = ok(&[
        "predict",
        "--server",
        &serve.url,
        "--model",
        "breast_cancer-bc-forest",
        "--input",
        rows.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let served: Vec<i64> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    // The same model compiled here.
    let table = fhe_ml::data::load_csv("data/breast_cancer.csv").unwrap();
    let split = table.split(0.2, 42).unwrap();
    let model = fhe_ml::compile(
        &fhe_ml::import::onnx(onnx).unwrap(),
        &split,
        Options::default(),
    )
    .unwrap();
    let expected: Vec<i64> = table
        .features
        .rows()
        .into_iter()
        .take(12)
        .map(|v| match model.predict(&v.to_vec(), Mode::Clear).unwrap() {
            Prediction::Class { label, .. } => label,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(served, expected);
    drop(serve);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `eval --onnx --json`: the usual report, the float model's figures as the plaintext column.
#[test]
fn eval_onnx_reports_float_quantized_and_encrypted() {
    let out = ok(&[
        "eval",
        "--onnx",
        "tests/fixtures/onnx/bc-logistic.onnx",
        "--data",
        "data/breast_cancer.csv",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["model"], "onnx");
    assert_eq!(v["exact_scores"], true);
    assert_eq!(v["agreement"]["encrypted_vs_quantized"], 1.0);
    let float = v["accuracy"]["plain"].as_f64().unwrap();
    assert!(float > 0.95, "{v}");
    // A regression through the same path: R² for each pipeline.
    let out = ok(&[
        "eval",
        "--onnx",
        "tests/fixtures/onnx/diabetes-ridge.onnx",
        "--data",
        "data/diabetes.csv",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["task"], "regression");
    let r2 = &v["r2"];
    assert!(
        r2["plain"].as_f64().unwrap() > 0.45 && r2["encrypted"] == r2["quantized"],
        "{v}"
    );
}

/// Refused models and files: one line naming what is wrong, exit non-zero, no panic.
#[test]
fn unsupported_models_get_one_clear_line() {
    let cases: [(&[&str], &[&str]); 5] = [
        (
            &[
                "eval",
                "--onnx",
                "tests/fixtures/onnx/unsupported-sigmoid-mlp.onnx",
                "--data",
                "data/digits.csv",
            ],
            &["Sigmoid", "node", "hidden layers: Relu"],
        ),
        (
            &[
                "import",
                "--onnx",
                "tests/fixtures/onnx/unsupported-conv.onnx",
                "--data",
                "data/digits.csv",
                "--out",
                "/tmp/never",
            ],
            &["Conv", "is not supported", "Gemm"],
        ),
        (
            &[
                "import",
                "--onnx",
                "Cargo.toml",
                "--data",
                "data/digits.csv",
                "--out",
                "/tmp/never",
            ],
            &["not an ONNX model"],
        ),
        (
            &[
                "eval",
                "--onnx",
                "tests/fixtures/onnx/bc-logistic.onnx",
                "--data",
                "data/digits.csv",
            ],
            &["features"],
        ),
        (
            &[
                "eval",
                "--onnx",
                "tests/fixtures/onnx/bc-logistic.onnx",
                "--model",
                "logistic",
                "--data",
                "data/breast_cancer.csv",
            ],
            &["cannot be used with"],
        ),
    ];
    for (args, needles) in cases {
        let out = fhe_ml(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        for needle in needles {
            assert!(stderr.contains(needle), "{args:?}: {stderr}");
        }
        if !args.contains(&"--model") {
            assert!(
                stderr.starts_with("error: ") && stderr.trim_end().lines().count() == 1,
                "{args:?}: {stderr}"
            );
        }
    }
}
