//! The one path (issue 14): every family fitted by its params type, compiled by one
//! `compile` with one `Options`, predicted by one `predict` in the four modes, which agree as
//! they should on whole test splits.

use fhe_ml::prelude::*;
use fhe_ml::program::Prediction;

fn breast_cancer() -> Split<usize> {
    fhe_ml::data::parse_csv_str(fhe_ml::data::BREAST_CANCER_CSV, "bc")
        .unwrap()
        .split(0.2, 42)
        .unwrap()
}

/// Linear models are leveled: `Clear`, `Noisy` and `Encrypted` are the same prediction on
/// every test row, one at a time and in a batch; `Float` is the fitted linfa model.
#[test]
fn logistic_modes_agree_on_the_whole_split() {
    let data = breast_cancer();
    let fitted = LogisticParams::default().fit(&data).unwrap();
    let model = compile(&fitted, &data, Options::default()).unwrap();
    let float_labels = fitted.predict(data.test.records());
    for (row, want) in data.test_rows().iter().zip(&float_labels) {
        let clear = model.predict(row, Mode::Clear).unwrap();
        assert_eq!(model.predict(row, Mode::Encrypted).unwrap(), clear);
        assert_eq!(model.predict(row, Mode::Noisy).unwrap(), clear);
        assert_eq!(
            model.predict(row, Mode::Float).unwrap().class_index(),
            Some(*want)
        );
    }
    let batch = model
        .predict_batch(&data.test_raw, Mode::Encrypted)
        .unwrap();
    let clear = model.predict_batch(&data.test_raw, Mode::Clear).unwrap();
    assert_eq!(batch.len(), data.test_raw.nrows());
    assert_eq!(batch, clear);
}

/// Label mode: the integer modes return the label only, and encrypted equals clear.
#[test]
fn label_mode_predicts_labels() {
    let data = breast_cancer();
    let fitted = LogisticParams::default().fit(&data).unwrap();
    let model = compile(&fitted, &data, Options::default().output(OutputMode::Label)).unwrap();
    for row in data.test_rows().iter().take(4) {
        let clear = model.predict(row, Mode::Clear).unwrap();
        let Prediction::Class { probabilities, .. } = &clear else {
            panic!("a class")
        };
        assert!(probabilities.is_empty(), "label mode returns no scores");
        assert_eq!(model.predict(row, Mode::Encrypted).unwrap(), clear);
    }
}

/// A regression: `Float` is the least-squares value, `Clear` its quantized twin (close), and
/// `Encrypted` equals `Clear`.
#[test]
fn regression_modes() {
    let table = fhe_ml::data::parse_csv_str(
        &(0..60)
            .map(|i| {
                format!(
                    "{},{},{}\n",
                    i,
                    (i * 7) % 11,
                    3 * i - 2 * ((i * 7) % 11) + 5
                )
            })
            .fold(String::from("a,b,target\n"), |s, l| s + &l),
        "lin",
    )
    .unwrap();
    let data = table.split_regression(0.2, 42).unwrap();
    let fitted = LinearParams.fit(&data).unwrap();
    let model = compile(&fitted, &data, Options::bits(10)).unwrap();
    let plain = fitted.predict(&data.test.records().to_owned());
    for (row, want) in data.test_rows().iter().zip(plain.iter()) {
        let float = model.predict(row, Mode::Float).unwrap().value().unwrap();
        assert!((float - want).abs() < 1e-9, "{float} vs {want}");
        let clear = model.predict(row, Mode::Clear).unwrap();
        assert!((clear.value().unwrap() - want).abs() < 0.5);
        assert_eq!(model.predict(row, Mode::Encrypted).unwrap(), clear);
    }
    let err = compile(&fitted, &data, Options::default().output(OutputMode::Label)).unwrap_err();
    assert!(matches!(err, fhe_ml::Error::Compile(_)), "{err}");
}

/// The MLP and a forest through the same calls: `Float` is the trained model, `Clear` the
/// compiled twin, `Encrypted` (a few rows) equals `Clear` for the forest (exact) and agrees with
/// it for the MLP; bits are a training setting for them, refused as a compile option.
#[test]
fn mlp_and_forest_take_the_same_path() {
    let data = breast_cancer();
    let rows = data.test_rows();
    let mlp = MlpParams::default()
        .hidden(&[8])
        .epochs(30)
        .fit(&data)
        .unwrap();
    let forest = ForestParams::forest().trees(3).fit(&data).unwrap();
    let compiled_mlp = compile(&mlp, &data, Options::default()).unwrap();
    let compiled_forest = compile(&forest, &data, Options::default()).unwrap();
    let float_mlp = mlp.predict_float(&rows).unwrap();
    let float_forest = forest.predict_plain(&rows);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(
            compiled_mlp
                .predict(row, Mode::Float)
                .unwrap()
                .class_index(),
            Some(float_mlp[i])
        );
        assert_eq!(
            compiled_forest
                .predict(row, Mode::Float)
                .unwrap()
                .class_index(),
            Some(float_forest[i])
        );
        assert_eq!(
            compiled_forest
                .predict(row, Mode::Clear)
                .unwrap()
                .class_index(),
            Some(forest.quantized.predict(&forest.quantize(row)))
        );
    }
    for row in rows.iter().take(2) {
        assert_eq!(
            compiled_forest.predict(row, Mode::Encrypted).unwrap(),
            compiled_forest.predict(row, Mode::Clear).unwrap()
        );
        assert_eq!(
            compiled_mlp
                .predict(row, Mode::Encrypted)
                .unwrap()
                .class_index(),
            compiled_mlp
                .predict(row, Mode::Clear)
                .unwrap()
                .class_index()
        );
    }
    for err in [
        compile(&mlp, &data, Options::bits(6)).unwrap_err(),
        compile(&forest, &data, Options::bits(6)).unwrap_err(),
    ] {
        assert!(
            matches!(&err, fhe_ml::Error::Compile(m) if m.contains("training parameter")),
            "{err}"
        );
    }
}

/// Invalid settings are refused by `check` (linfa's `ParamGuard`) and by `fit`, naming them.
#[test]
fn params_are_checked() {
    let data = breast_cancer();
    let cases: Vec<(fhe_ml::Result<()>, &str)> = vec![
        (
            LogisticParams::default().alpha(-1.0).check().map(|_| ()),
            "L2 strength",
        ),
        (
            LogisticParams::default()
                .max_iterations(0)
                .check()
                .map(|_| ()),
            "iteration",
        ),
        (MlpParams::default().epochs(0).check().map(|_| ()), "epochs"),
        (
            MlpParams::default().hidden(&[]).check().map(|_| ()),
            "hidden",
        ),
        (
            MlpParams::default()
                .activation_bits(9)
                .fit(&data)
                .map(|_| ()),
            "activation bits",
        ),
        (ForestParams::tree().depth(0).check().map(|_| ()), "depth"),
        (
            ForestParams::forest().input_bits(8).fit(&data).map(|_| ()),
            "input bits",
        ),
    ];
    for (result, expect) in cases {
        match result {
            Err(fhe_ml::Error::Training(m)) => assert!(m.contains(expect), "{m}"),
            other => panic!("{expect}: {other:?}"),
        }
    }
    assert!(LogisticParams::default().check_ref().is_ok());
    assert!(ForestParams::forest().check().is_ok());
}

/// The label head is the program's last step: one bootstrap count (model, program and server
/// agree), the clear interpreter returns the head's labels, and switching the output mode back
/// gives the same model with the same fingerprint.
#[test]
fn the_label_head_is_a_step_of_the_program() {
    let data = breast_cancer();
    let fitted = LogisticParams::default().fit(&data).unwrap();
    let scores = compile(&fitted, &data, Options::default()).unwrap();
    let label = scores.clone().with_output(OutputMode::Label).unwrap();
    assert_eq!(scores.bootstraps(), 0);
    let head = label.label_head().expect("label mode");
    assert!(matches!(
        label.program().steps.last(),
        Some(fhe_ml::program::Step::Label(_))
    ));
    assert_eq!(label.bootstraps(), head.bootstraps());
    assert_eq!(label.output(), OutputMode::Label);
    assert_ne!(label.model_id(), scores.model_id());
    let (_, server) = label.keygen().unwrap();
    assert_eq!(server.bootstraps_per_inference(), label.bootstraps());
    for row in data.test_rows() {
        let s = scores.simulate(&row).unwrap();
        assert_eq!(label.simulate_scores(&row).unwrap(), s);
        assert_eq!(label.simulate(&row).unwrap(), vec![i64::from(s[0] >= 0)]);
    }
    let back = label.with_output(OutputMode::Scores).unwrap();
    assert_eq!(back, scores);
    assert_eq!(back.model_id(), scores.model_id());
}

/// `eval::timed_run`, the notebooks' one-row-at-a-time loop: one entry per row in every vector,
/// decrypted predictions equal to the clear twin's (counted, and checked here row by row), the
/// server's step timings named after the program's steps, and the wire sizes of one row.
#[test]
fn timed_run_times_every_row_and_matches_the_twin() {
    let data = breast_cancer();
    let fitted = LogisticParams::default().fit(&data).unwrap();
    let model = compile(&fitted, &data, Options::default()).unwrap();
    let (client, server) = model.keygen().unwrap();
    let rows = data.test_rows();
    let run = fhe_ml::eval::timed_run(&model, &client, &server, &rows).unwrap();
    let n = rows.len();
    assert_eq!(run.predictions.len(), n);
    assert_eq!(run.outputs.len(), n);
    assert_eq!(
        (
            run.encrypt_ms.len(),
            run.infer_ms.len(),
            run.decrypt_ms.len()
        ),
        (n, n, n)
    );
    assert_eq!(run.equal_to_clear, n);
    let clear = model.predict_batch(&data.test_raw, Mode::Clear).unwrap();
    assert_eq!(run.predictions, clear);
    assert_eq!(
        run.class_indices(),
        clear
            .iter()
            .map(|p| p.class_index().unwrap())
            .collect::<Vec<_>>()
    );
    assert_eq!(run.step_ms.len(), model.program().steps.len());
    assert!(run
        .step_ms
        .iter()
        .all(|(name, v)| !name.is_empty() && v.len() == n));
    let total = run.total_ms();
    assert!(total
        .iter()
        .zip(&run.infer_ms)
        .all(|(t, i)| t >= i && *i > 0.0));
    assert_eq!(
        run.input_bytes,
        client.encrypt(&rows[0]).unwrap().to_bytes().unwrap().len()
    );
    assert!(run.output_bytes > 0);
    // A row of the wrong width is an error for that row, not a panic.
    let err = fhe_ml::eval::timed_run(&model, &client, &server, &[vec![0.0; 3]]).unwrap_err();
    assert!(matches!(err, fhe_ml::Error::Shape { .. }), "{err}");
}
