//! ONNX import against the frameworks that wrote the files: every fixture in
//! tests/fixtures/onnx (written by scripts/make-onnx-fixtures with pinned scikit-learn,
//! skl2onnx, XGBoost, onnxmltools and PyTorch) is imported, and its float predictions are
//! compared with the framework's own on the whole test split.

use std::path::{Path, PathBuf};

use fhe_ml::import;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

/// A fixture's record: the framework's predictions on the test rows.
struct Reference {
    name: String,
    dataset: String,
    test_rows: Vec<usize>,
    labels: Option<Vec<i64>>,
    scores: Vec<Vec<f64>>,
}

fn references() -> Vec<Reference> {
    let mut out = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    for path in paths {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        out.push(Reference {
            name: v["model"].as_str().unwrap().to_string(),
            dataset: v["dataset"].as_str().unwrap().to_string(),
            test_rows: v["test_rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as usize)
                .collect(),
            labels: v["labels"]
                .as_array()
                .map(|a| a.iter().map(|x| x.as_i64().unwrap()).collect()),
            scores: v["scores"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    r.as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_f64().unwrap())
                        .collect()
                })
                .collect(),
        });
    }
    assert!(out.len() >= 16, "fixtures missing: {}", out.len());
    out
}

/// The dataset's rows (features only), as the CSV gives them.
fn rows(dataset: &str) -> Vec<Vec<f64>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("data/{dataset}.csv"));
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let mut v: Vec<f64> = l.split(',').map(|x| x.parse().unwrap()).collect();
            v.pop();
            v
        })
        .collect()
}

#[test]
fn float_predictions_equal_the_frameworks_on_every_test_row() {
    for r in references() {
        let model = import::onnx(fixtures().join(format!("{}.onnx", r.name)))
            .unwrap_or_else(|e| panic!("{}: {e}", r.name));
        let data = rows(&r.dataset);
        // Relative to the largest score of the split: the files hold float32 weights, so a
        // score near 0 carries the rounding of terms a thousand times larger.
        let scale = r
            .scores
            .iter()
            .flatten()
            .fold(1e-12f64, |m, v| m.max(v.abs()));
        let mut worst = 0f64;
        for (i, &row) in r.test_rows.iter().enumerate() {
            let x = &data[row];
            let scores = model.scores(x).unwrap();
            assert_eq!(scores.len(), r.scores[i].len(), "{}: score width", r.name);
            for (a, b) in scores.iter().zip(&r.scores[i]) {
                worst = worst.max((a - b).abs() / scale);
            }
            if let Some(labels) = &r.labels {
                assert_eq!(
                    model.label(x).unwrap(),
                    Some(labels[i]),
                    "{}: row {row}",
                    r.name
                );
            }
        }
        println!(
            "{}: {} rows, worst relative score error {worst:.2e} ({})",
            r.name,
            r.test_rows.len(),
            model.describe()
        );
        assert!(worst < 1e-6, "{}: worst relative error {worst}", r.name);
    }
}
