//! Training quality against scikit-learn: every family's float model, trained with its default
//! options on fhe-ml's split of each dataset, scores at least scikit-learn's committed reference
//! (`bench/results/sklearn-reference.json`, made by `scripts/sklearn-reference` on the same rows,
//! features and scaling) minus one test row (accuracy) or minus 0.01 (R², and D² for GLMs).
//! The table it prints (`--nocapture`) is the README's training-quality table.

use fhe_ml::data::Split;
use fhe_ml::eval::{d2_tweedie, r2};
use fhe_ml::prelude::*;

/// One row of the reference file.
struct Reference {
    family: String,
    dataset: String,
    metric: String,
    score: f64,
    n_test: usize,
}

fn references() -> Vec<Reference> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/bench/results/sklearn-reference.json"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the reference file"))
            .expect("JSON");
    v["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| Reference {
            family: r["family"].as_str().unwrap().into(),
            dataset: r["dataset"].as_str().unwrap().into(),
            metric: r["metric"].as_str().unwrap().into(),
            score: r["score"].as_f64().unwrap(),
            n_test: r["n_test"].as_u64().unwrap() as usize,
        })
        .collect()
}

mod common;
use common::{classification_split as classification, regression_split as regression};

fn accuracy(predicted: &[usize], split: &Split<usize>) -> f64 {
    let truth = split.test_targets();
    predicted.iter().zip(&truth).filter(|(p, t)| p == t).count() as f64 / truth.len() as f64
}

/// The float model's test score of `family` on `dataset`, and the number of test rows.
fn our_score(family: &str, dataset: &str) -> (f64, usize) {
    match family {
        "logistic" | "svm" | "tree" | "forest" | "gbdt" => {
            let split = classification(dataset);
            let scaled = split.test.records().to_owned();
            let predicted = match family {
                "logistic" => LogisticParams::default()
                    .fit(&split)
                    .unwrap()
                    .predict(&scaled),
                "svm" => SvmParams::default().fit(&split).unwrap().predict(&scaled),
                "tree" => ForestParams::tree()
                    .fit(&split)
                    .unwrap()
                    .predict_plain(&split.test_rows()),
                "gbdt" => GbdtParams::default()
                    .fit(&split)
                    .unwrap()
                    .predict_classes(&split.test_rows())
                    .unwrap(),
                _ => ForestParams::forest()
                    .fit(&split)
                    .unwrap()
                    .predict_plain(&split.test_rows()),
            };
            (accuracy(&predicted, &split), split.test_targets().len())
        }
        _ => {
            let split = regression(dataset);
            let scaled = split.test.records().to_owned();
            let truth = split.test_targets();
            let score = match family {
                "linear" => r2(
                    &truth,
                    &LinearParams.fit(&split).unwrap().predict(&scaled).to_vec(),
                ),
                "ridge" | "lasso" | "elasticnet" => {
                    let params = match family {
                        "ridge" => PenalizedParams::ridge(),
                        "lasso" => PenalizedParams::lasso(),
                        _ => PenalizedParams::elastic_net(),
                    };
                    r2(
                        &truth,
                        &params.fit(&split).unwrap().predict(&scaled).to_vec(),
                    )
                }
                "poisson" | "gamma" | "tweedie" => {
                    let params = match family {
                        "poisson" => GlmParams::poisson(),
                        "gamma" => GlmParams::gamma(),
                        _ => GlmParams::tweedie(1.5),
                    };
                    let mu = params.fit(&split).unwrap().predict(&scaled).to_vec();
                    d2_tweedie(&truth, &mu, params.power())
                }
                "tree-regressor" | "forest-regressor" | "gbdt-regressor" => {
                    let fitted = match family {
                        "tree-regressor" => TreeRegressorParams::tree().fit(&split),
                        "forest-regressor" => TreeRegressorParams::forest().fit(&split),
                        _ => GbdtParams::default().fit_regression(&split),
                    };
                    r2(
                        &truth,
                        &fitted.unwrap().predict_values(&split.test_rows()).unwrap(),
                    )
                }
                other => panic!("no family {other} in fhe-ml: the reference file names one"),
            };
            (score, truth.len())
        }
    }
}

#[test]
fn every_family_trains_as_well_as_scikit_learn() {
    let refs = references();
    assert!(refs.len() >= 20, "{} reference rows", refs.len());
    let mut failures = Vec::new();
    let only: Vec<String> = std::env::var("QUALITY_ONLY")
        .map(|s| s.split(',').map(String::from).collect())
        .unwrap_or_default();
    println!(
        "| family | dataset | metric | fhe-ml | scikit-learn | bar |\n|---|---|---|---|---|---|"
    );
    for r in refs
        .iter()
        .filter(|r| only.is_empty() || only.contains(&r.family))
    {
        let (ours, n_test) = our_score(&r.family, &r.dataset);
        assert_eq!(
            n_test, r.n_test,
            "{} {}: another split",
            r.family, r.dataset
        );
        // Accuracy: one test row; R² and D²: 0.01.
        let slack = if r.metric == "accuracy" {
            1.0 / n_test as f64 + 1e-12
        } else {
            0.01
        };
        let bar = r.score - slack;
        let fmt = |v: f64| {
            if r.metric == "accuracy" {
                format!("{:.1}%", 100.0 * v)
            } else {
                format!("{v:.3}")
            }
        };
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.family,
            r.dataset,
            if r.metric == "r2" {
                "R²"
            } else if r.metric == "d2" {
                "D²"
            } else {
                "accuracy"
            },
            fmt(ours),
            fmt(r.score),
            if ours >= bar { "met" } else { "BELOW" }
        );
        if ours < bar {
            failures.push(format!(
                "{} on {}: {} {ours:.4} < scikit-learn's {:.4} minus {slack:.4}",
                r.family, r.dataset, r.metric, r.score
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
