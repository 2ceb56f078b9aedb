//! The committed results files that notebooks 07 and 09 read: they parse into their report
//! types, and a file of another shape is an error naming it, not a panic.

use fhe_ml::report::{load_comparison, load_techniques};

#[test]
fn the_techniques_file_has_every_technique_on_every_workload() {
    let results = load_techniques("bench/results/techniques.json").unwrap();
    assert!(!results.smoke, "the committed file is a full run");
    for technique in ["plaintext", "FHE", "DP", "MPC", "FL", "TEE"] {
        assert!(
            results.rows.iter().any(|r| r.technique == technique),
            "no {technique} row"
        );
    }
    for workload in ["breast_cancer-logistic", "digits-logistic", "digits-mlp"] {
        for technique in ["plaintext", "FHE", "MPC"] {
            assert!(
                results.rows.iter().any(|r| r.technique == technique
                    && r.workload.as_deref() == Some(workload)
                    && r.measured),
                "no measured {technique} row for {workload}"
            );
        }
    }
    for r in &results.rows {
        if let Some(a) = r.accuracy {
            assert!((0.0..=1.0).contains(&a), "{r:?}");
        }
        // Quoted figures name their source; measured ones are this run's.
        assert_eq!(r.measured, r.source.is_none(), "{r:?}");
    }
}

#[test]
fn a_results_file_of_another_shape_is_an_error_naming_it() {
    let dir = std::env::temp_dir().join(format!("fhe-ml-results-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wrong = dir.join("wrong.json");
    std::fs::write(&wrong, r#"{"rows": 3}"#).unwrap();
    for err in [
        load_techniques(&wrong).unwrap_err(),
        load_comparison(&wrong).unwrap_err(),
    ] {
        assert!(matches!(err, fhe_ml::Error::Csv { .. }), "{err}");
        assert!(err.to_string().contains("wrong.json"), "{err}");
    }
    assert!(matches!(
        load_techniques(dir.join("missing.json")).unwrap_err(),
        fhe_ml::Error::Io { .. }
    ));
    assert!(!load_comparison("bench/results/compare.json")
        .unwrap()
        .is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
