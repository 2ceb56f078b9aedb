//! The CLI contract: `eval --json` prints the documented object; errors exit non-zero with one
//! line and no panic.

mod common;

use common::{fhe_ml, fhe_ml_ok};

#[test]
fn eval_json_follows_the_contract() {
    let out = fhe_ml_ok(&[
        "eval",
        "--data",
        "data/breast_cancer.csv",
        "--model",
        "logistic",
        "--limit",
        "40",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "dataset",
        "model",
        "task",
        "n_train",
        "n_test",
        "n_features",
        "n_classes",
        "params",
        "accuracy",
        "agreement",
        "latency_ms",
        "throughput_per_s",
        "bytes",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["n_test"], 40);
    assert_eq!(v["n_features"], 30);
    assert_eq!(v["agreement"]["encrypted_vs_quantized"], 1.0);
    assert!(v["params"].as_str().unwrap().contains("TUNIFORM_2M128"));
    for key in ["plain", "quantized", "encrypted"] {
        assert!(v["accuracy"][key].as_f64().unwrap() > 0.9);
    }
    for key in ["keygen", "encrypt", "infer", "decrypt", "total"] {
        assert!(v["latency_ms"][key].as_f64().unwrap() > 0.0, "{key}");
    }
    for key in ["input_ciphertext", "output_ciphertext", "evaluation_key"] {
        assert!(v["bytes"][key].is_u64(), "{key}");
    }
    assert!(v["bytes"]["input_ciphertext"].as_u64().unwrap() <= 984);
    assert_eq!(v["exact_scores"], true);
}

#[test]
fn regression_json_has_r2_and_max_abs_error() {
    let path = std::env::temp_dir().join(format!("fhe_ml_cli_reg_{}.csv", std::process::id()));
    let mut text = String::from("x1,x2,target\n");
    for i in 0..120 {
        let (a, b) = ((i % 17) as f64, (i % 5) as f64 * 0.5);
        text += &format!("{a},{b},{}\n", 2.0 * a - b + 1.0);
    }
    std::fs::write(&path, text).unwrap();
    let out = fhe_ml(&[
        "eval",
        "--data",
        path.to_str().unwrap(),
        "--model",
        "linear",
        "--json",
    ]);
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["task"], "regression");
    assert!(v["r2"]["encrypted"].as_f64().unwrap() > 0.99);
    assert_eq!(v["max_abs_error"]["encrypted_vs_quantized"], 0.0);
    assert!(v.get("accuracy").is_none());
}

/// Issue 16's `--model` values from the command line: a GLM reports deviance and D² beside R²,
/// label mode is refused for a regression, gradient boosting classifies exactly.
#[test]
fn new_families_run_from_the_command_line() {
    let out = fhe_ml_ok(&[
        "eval",
        "--data",
        "data/bikeshare.csv",
        "--model",
        "poisson",
        "--limit",
        "40",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["model"], "poisson");
    assert_eq!(v["task"], "regression");
    assert_eq!(v["max_abs_error"]["encrypted_vs_quantized"], 0.0);
    for key in ["r2", "deviance", "d2"] {
        assert_eq!(v[key]["encrypted"], v[key]["quantized"], "{key}: {v}");
    }
    assert!(v["d2"]["plain"].as_f64().unwrap() > 0.5, "{v}");
    assert!(v["deviance"]["plain"].as_f64().unwrap() > 0.0, "{v}");
    let label = fhe_ml(&[
        "eval",
        "--data",
        "data/diabetes.csv",
        "--model",
        "ridge",
        "--output",
        "label",
    ]);
    assert!(!label.status.success());
    let out = fhe_ml_ok(&[
        "eval",
        "--data",
        "data/breast_cancer.csv",
        "--model",
        "gbdt",
        "--trees",
        "5",
        "--limit",
        "3",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["exact_scores"], true);
    assert!(
        v["architecture"].as_str().unwrap().contains("5-tree"),
        "{v}"
    );
}

#[test]
fn errors_are_one_line_without_panic() {
    for args in [
        vec!["eval", "--data", "data/missing.csv", "--model", "logistic"],
        vec![
            "eval",
            "--data",
            "data/breast_cancer.csv",
            "--model",
            "logistic",
            "--bits",
            "1",
        ],
        vec![
            "eval",
            "--data",
            "data/breast_cancer.csv",
            "--model",
            "logistic",
            "--test-fraction",
            "1.5",
        ],
        vec![
            "eval",
            "--data",
            "data/breast_cancer.csv",
            "--model",
            "logistic",
            "--limit",
            "0",
        ],
        vec![
            "eval",
            "--data",
            "data/breast_cancer.csv",
            "--model",
            "linear",
            "--bits",
            "16",
        ],
        vec!["eval", "--data", "Cargo.toml", "--model", "logistic"],
    ] {
        let out = fhe_ml(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// `export` → `serve --models` → `eval --server` and `predict`: the service's answers equal the
/// local run's, on breast cancer and digits.
#[test]
fn eval_through_the_service_equals_local_eval() {
    let dir = std::env::temp_dir().join(format!("fhe-ml-cli-{}", std::process::id()));
    for (data, output) in [
        ("data/breast_cancer.csv", "scores"),
        ("data/digits.csv", "scores"),
        ("data/digits.csv", "top-3"),
    ] {
        fhe_ml_ok(&[
            "export",
            "--data",
            data,
            "--model",
            "logistic",
            "--output",
            output,
            "--out",
            dir.to_str().unwrap(),
        ]);
    }
    let serve = common::Serve::start(dir.to_str().unwrap());
    let url = serve.url.clone();
    let json = |args: &[&str]| -> serde_json::Value {
        serde_json::from_slice(&fhe_ml_ok(args).stdout).unwrap()
    };
    for data in ["data/breast_cancer.csv", "data/digits.csv"] {
        let base = ["eval", "--data", data, "--model", "logistic", "--json"];
        let local = json(&base);
        let remote = json(&[&base[..], &["--server", &url]].concat());
        assert_eq!(remote["agreement"]["encrypted_vs_quantized"], 1.0, "{data}");
        assert_eq!(remote["accuracy"], local["accuracy"], "{data}");
        assert_eq!(remote["exact_scores"], true, "{data}");
    }
    // predict: labels for the rows of a CSV (its target column ignored).
    let out = fhe_ml_ok(&[
        "predict",
        "--server",
        &url,
        "--model",
        "breast_cancer-logistic",
        "--input",
        "data/breast_cancer.csv",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 570, "a header and one line per row");
    // A top-3 model: the prediction, then the three best classes, best first.
    let few = dir.join("three-digits.csv");
    let digits = std::fs::read_to_string("data/digits.csv").unwrap();
    std::fs::write(&few, digits.lines().take(4).collect::<Vec<_>>().join("\n")).unwrap();
    let out = fhe_ml_ok(&[
        "predict",
        "--server",
        &url,
        "--model",
        "digits-logistic-top3",
        "--input",
        few.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "row,prediction,top_3");
    assert_eq!(lines.len(), 4, "{text}");
    for line in &lines[1..] {
        let fields: Vec<&str> = line.split(',').collect();
        let ranked: Vec<&str> = fields[2].split(' ').collect();
        assert_eq!(ranked.len(), 3, "{line}");
        assert_eq!(
            ranked[0], fields[1],
            "the prediction is the best class: {line}"
        );
        assert!(ranked[1] != ranked[0] && ranked[2] != ranked[1] && ranked[2] != ranked[0]);
    }
    // A model the service does not have: one clear line.
    let out = fhe_ml(&[
        "eval",
        "--data",
        "data/iris.csv",
        "--model",
        "logistic",
        "--server",
        &url,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("iris-logistic"),
        "{err}"
    );
    drop(serve);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--output top-K`: the report names the mode and its head, and every row's ranked labels
/// equal the clear model's; a malformed mode is one line on stderr.
#[test]
fn eval_top_k_reports_ranked_labels() {
    let out = fhe_ml_ok(&[
        "eval",
        "--data",
        "data/digits.csv",
        "--model",
        "logistic",
        "--output",
        "top-3",
        "--limit",
        "2",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["output"], "top-3");
    assert_eq!(v["label"]["labels"], 3);
    assert_eq!(
        v["exact_scores"], true,
        "ranked labels equal the clear twin's"
    );
    // 3 labels × 4 bits, each an LWE ciphertext of 2049 16-bit coefficients.
    assert!(v["bytes"]["output_ciphertext"].as_u64().unwrap() >= 12 * 2049 * 2);
    let bad = fhe_ml(&[
        "eval",
        "--data",
        "data/digits.csv",
        "--output",
        "top-0",
        "--limit",
        "1",
    ]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("top-K") && !err.contains("panicked"), "{err}");
}
