//! Issue 16's families end to end through the library, on whole test splits: each is fitted by
//! its params type on its dataset, compiled by the one `compile`, and predicted in every mode.
//! Encrypted inference equals the clear twin exactly on every test row (linear models and tree
//! ensembles are exact), the float twin is the fitted model, and label mode serves the
//! classifiers.

use fhe_ml::prelude::*;
use fhe_ml::program::Prediction;

mod common;
use common::{classification_split as classification, regression_split as regression};

/// Encrypted (a batch over the whole test split) equals clear, row by row.
fn encrypted_equals_clear(model: &CompiledModel, test_raw: &ndarray::Array2<f64>) {
    let clear = model.predict_batch(test_raw, Mode::Clear).unwrap();
    let encrypted = model.predict_batch(test_raw, Mode::Encrypted).unwrap();
    assert_eq!(encrypted.len(), test_raw.nrows());
    for (i, (e, c)) in encrypted.iter().zip(&clear).enumerate() {
        assert_eq!(e, c, "{}: test row {i}", model.architecture());
    }
}

fn value(p: &Prediction) -> f64 {
    p.value().expect("a regression value")
}

#[test]
fn linear_svm_is_exact_and_serves_labels() {
    for dataset in ["breast_cancer", "digits"] {
        let data = classification(dataset);
        let fitted = SvmParams::default().fit(&data).unwrap();
        let model = compile(&fitted, &data, Options::default()).unwrap();
        encrypted_equals_clear(&model, &data.test_raw);
        // The float twin is the fitted SVM.
        let float = fitted.predict(&data.test.records().to_owned());
        for (row, want) in data.test_rows().iter().zip(&float) {
            let got = model.predict(row, Mode::Float).unwrap().class_index();
            assert_eq!(got, Some(*want), "{dataset}");
        }
    }
    // Label mode (the model stays private): the label only, equal to the clear twin's.
    let data = classification("breast_cancer");
    let fitted = SvmParams::default().fit(&data).unwrap();
    let model = compile(&fitted, &data, OutputMode::Label).unwrap();
    for row in data.test_rows().iter().take(3) {
        let clear = model.predict(row, Mode::Clear).unwrap();
        assert_eq!(model.predict(row, Mode::Encrypted).unwrap(), clear);
    }
}

#[test]
fn penalized_regressions_are_exact() {
    for dataset in ["diabetes", "auto_mpg"] {
        let data = regression(dataset);
        for params in [
            PenalizedParams::ridge(),
            PenalizedParams::lasso(),
            PenalizedParams::elastic_net(),
        ] {
            let fitted = params.fit(&data).unwrap();
            let model = compile(&fitted, &data, Options::default()).unwrap();
            encrypted_equals_clear(&model, &data.test_raw);
            let float = fitted.predict(&data.test.records().to_owned());
            for (row, want) in data.test_rows().iter().zip(&float) {
                let got = value(&model.predict(row, Mode::Float).unwrap());
                assert!((got - want).abs() < 1e-9, "{dataset}: {got} vs {want}");
            }
        }
        // Lasso zeroes weights: L1 sparsity survives compilation (no weight from nothing).
        let lasso = PenalizedParams::lasso().alpha(5.0).fit(&data).unwrap();
        assert!(lasso.weights.iter().any(|w| *w == 0.0), "{dataset}");
    }
}

/// GLMs: the server computes the linear predictor exactly; the client's `exp` makes the mean.
#[test]
fn glms_apply_the_log_link_on_the_client() {
    for (params, dataset) in [
        (GlmParams::poisson(), "bikeshare"),
        (GlmParams::tweedie(1.5), "bikeshare"),
        (GlmParams::gamma(), "auto_mpg"),
    ] {
        let data = regression(dataset);
        let fitted = params.fit(&data).unwrap();
        let model = compile(&fitted, &data, Options::default()).unwrap();
        encrypted_equals_clear(&model, &data.test_raw);
        let float = fitted.predict(&data.test.records().to_owned());
        for (row, want) in data.test_rows().iter().zip(&float).take(200) {
            let clear = value(&model.predict(row, Mode::Clear).unwrap());
            // Means are positive, and the 8-bit twin stays within 5% of the float mean here.
            assert!(
                clear > 0.0 && (clear - want).abs() <= 0.05 * want.max(1.0),
                "{clear} vs {want}"
            );
        }
    }
    // Counts need non-negative targets; Gamma positive ones.
    let negative = fhe_ml::data::parse_csv_str("a,target\n1,-1\n2,3\n3,4\n4,2\n5,1\n", "n")
        .unwrap()
        .split_regression(0.2, 1)
        .unwrap();
    let err = GlmParams::poisson().fit(&negative).unwrap_err();
    assert!(err.to_string().contains("non-negative"), "{err}");
    assert!(GlmParams::gamma().fit(&negative).is_err());
}

#[test]
fn boosted_trees_classify_exactly() {
    let data = classification("breast_cancer");
    let fitted = GbdtParams::default().fit(&data).unwrap();
    let model = compile(&fitted, &data, Options::default()).unwrap();
    encrypted_equals_clear(&model, &data.test_raw);
    let float = fitted.predict_classes(&data.test_rows()).unwrap();
    for (row, want) in data.test_rows().iter().zip(&float) {
        let got = model.predict(row, Mode::Float).unwrap().class_index();
        assert_eq!(got, Some(*want));
    }
    // The encrypted model keeps the float model's accuracy within one test row.
    let truth = data.test_targets();
    let hits = |p: &[usize]| p.iter().zip(&truth).filter(|(a, b)| a == b).count();
    let clear: Vec<usize> = model
        .predict_batch(&data.test_raw, Mode::Clear)
        .unwrap()
        .iter()
        .map(|p| p.class_index().unwrap())
        .collect();
    assert!(
        hits(&clear) + 1 >= hits(&float),
        "{} vs {}",
        hits(&clear),
        hits(&float)
    );
}

#[test]
fn regression_trees_forests_and_boosting_are_exact() {
    for (fitted, dataset) in [
        (
            TreeRegressorParams::tree().fit(&regression("diabetes")),
            "diabetes",
        ),
        (
            TreeRegressorParams::forest().fit(&regression("auto_mpg")),
            "auto_mpg",
        ),
        (
            GbdtParams::default().fit_regression(&regression("auto_mpg")),
            "auto_mpg",
        ),
    ] {
        let data = regression(dataset);
        let fitted = fitted.unwrap();
        let model = compile(&fitted, &data, Options::default()).unwrap();
        encrypted_equals_clear(&model, &data.test_raw);
        let float = fitted.predict_values(&data.test_rows()).unwrap();
        for (row, want) in data.test_rows().iter().zip(&float) {
            let got = value(&model.predict(row, Mode::Float).unwrap());
            assert!((got - want).abs() < 1e-9, "{}", fitted.description);
        }
    }
}

#[test]
fn bad_settings_are_training_errors() {
    let data = classification("breast_cancer");
    for params in [
        GbdtParams::default().trees(0),
        GbdtParams::default().depth(9),
        GbdtParams::default().learning_rate(0.0),
        GbdtParams::default().learning_rate(f64::NAN),
    ] {
        assert!(
            matches!(params.fit(&data), Err(Error::Training(_))),
            "{params:?}"
        );
    }
    assert!(matches!(
        SvmParams::default().c(-1.0).fit(&data),
        Err(Error::Training(_))
    ));
    let reg = regression("diabetes");
    assert!(matches!(
        PenalizedParams::ridge().alpha(f64::INFINITY).fit(&reg),
        Err(Error::Training(_))
    ));
    assert!(matches!(
        PenalizedParams::elastic_net().l1_ratio(1.5).fit(&reg),
        Err(Error::Training(_))
    ));
    assert!(matches!(
        TreeRegressorParams::tree().depth(0).fit(&reg),
        Err(Error::Training(_))
    ));
    assert!(matches!(
        GlmParams::tweedie(0.5).fit(&reg),
        Err(Error::Training(_))
    ));
}
