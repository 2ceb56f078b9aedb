//! Bad input gets a clear error, never a panic: CSV problems, rows of the wrong shape or with
//! NaN, and ciphertexts or keys that are malformed, corrupted, oversized, of the wrong kind, or
//! made for another model.

use std::path::PathBuf;

use fhe_ml::data::load_csv;
use fhe_ml::fhe::OutputMode;
use fhe_ml::prelude::*;
use fhe_ml::train;

fn temp_csv(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("fhe_ml_{}_{name}.csv", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

fn load_err(name: &str, text: &str) -> String {
    let path = temp_csv(name, text);
    let err = load_csv(&path)
        .and_then(|t| t.split(0.2, 42).map(|_| ()))
        .unwrap_err()
        .to_string();
    let _ = std::fs::remove_file(path);
    err
}

#[test]
fn loader_errors_are_clear() {
    let missing = load_csv("data/no_such_file.csv").unwrap_err().to_string();
    assert!(missing.contains("no_such_file.csv"), "{missing}");

    let ragged = load_err("ragged", "a,b,target\n1,2,0\n3,1\n4,5,1\n");
    assert!(
        ragged.contains("line 3") && ragged.contains("2 cells"),
        "{ragged}"
    );

    let text = load_err("text", "a,b,target\n1,2,0\n3,abc,1\n");
    assert!(
        text.contains("`abc` is not a number") && text.contains("column `b`"),
        "{text}"
    );

    let nan = load_err("nan", "a,b,target\n1,NaN,0\n3,4,1\n");
    assert!(nan.contains("not a finite number"), "{nan}");

    let inf = load_err("inf", "a,b,target\n1,2,0\ninf,4,1\n");
    assert!(inf.contains("not a finite number"), "{inf}");

    let single = load_err("single", "a,b,target\n1,2,1\n3,4,1\n5,6,1\n");
    assert!(single.contains("single class"), "{single}");

    let no_target = load_err("notarget", "a,b,label\n1,2,0\n3,4,1\n");
    assert!(no_target.contains("`target`"), "{no_target}");

    let empty = load_err("empty", "a,b,target\n");
    assert!(empty.contains("no data rows"), "{empty}");

    let real = load_err("real", "a,target\n1,0.5\n2,1.5\n3,0.5\n4,1.5\n");
    assert!(real.contains("not an integer class label"), "{real}");

    let lonely = load_err("lonely", "a,target\n1,0\n2,0\n3,1\n");
    assert!(lonely.contains("class 1 has 1 sample"), "{lonely}");
}

fn model(path: &str, bits: u32) -> CompiledModel {
    let split = load_csv(path).unwrap().split(0.2, 42).unwrap();
    let fitted = train::fit_logistic(&split).unwrap();
    compile(&fitted, &split, Quantization::bits(bits)).unwrap()
}

#[test]
fn rows_of_the_wrong_shape_or_with_nan_are_refused() {
    let m = model("data/iris.csv", 8);
    let (client, _server) = m.keygen().unwrap();
    assert!(client
        .encrypt(&[1.0, 2.0, 3.0])
        .unwrap_err()
        .to_string()
        .contains("expects 4"));
    assert!(client
        .encrypt(&[1.0, f64::NAN, 3.0, 4.0])
        .unwrap_err()
        .to_string()
        .contains("NaN"));
    assert!(client
        .encrypt_quantized(&[0, 0, 0, 256])
        .unwrap_err()
        .to_string()
        .contains("above 255"));
    assert!(m.simulate(&[1.0; 5]).is_err());
    // Out-of-range values are clipped and counted, never wrapped.
    let ct = client.encrypt(&[1e9, -1e9, 5.0, 1.0]).unwrap();
    assert_eq!(client.clipped_count(), 2);
    let _ = ct;
}

#[test]
fn ciphertexts_for_another_model_are_refused() {
    let bc8 = model("data/breast_cancer.csv", 8);
    let bc6 = model("data/breast_cancer.csv", 6);
    let digits = model("data/digits.csv", 8);
    let (client8, server8) = bc8.keygen().unwrap();
    let (client6, server6) = bc6.keygen().unwrap();
    let (_, server_digits) = digits.keygen().unwrap();
    let row = vec![15.0; 30];
    let ct8 = client8.encrypt(&row).unwrap();
    let err = server6.infer(&ct8).unwrap_err().to_string();
    assert!(err.contains("another model"), "{err}");
    assert!(server_digits.infer(&ct8).is_err());
    // A result decrypted by the client of another model.
    let out6 = server6.infer(&client6.encrypt(&row).unwrap()).unwrap();
    assert!(client8
        .decrypt(&out6)
        .unwrap_err()
        .to_string()
        .contains("another model"));
    // The right pairing still works after all these refusals.
    assert!(client8.decrypt(&server8.infer(&ct8).unwrap()).is_ok());
}

#[test]
fn malformed_blobs_are_refused() {
    let m = model("data/breast_cancer.csv", 8);
    let (client, server) = m.keygen().unwrap();
    let row = vec![15.0; 30];
    let blob = client.encrypt(&row).unwrap().to_bytes().unwrap();
    assert!(server.infer_bytes(&blob).is_ok());

    // Truncated anywhere.
    for cut in [0, 3, 11, blob.len() / 2, blob.len() - 1] {
        assert!(server.infer_bytes(&blob[..cut]).is_err(), "cut at {cut}");
    }
    // Any single corrupted byte.
    for i in 0..blob.len() {
        let mut bad = blob.clone();
        bad[i] ^= 0x01;
        assert!(server.infer_bytes(&bad).is_err(), "byte {i} flipped");
    }
    // Garbage, and a blob claiming an oversized payload.
    assert!(server.infer_bytes(&[0xAB; 4096]).is_err());
    let mut huge = blob[..11].to_vec();
    huge[7..11].copy_from_slice(&u32::MAX.to_le_bytes());
    huge.extend(std::iter::repeat_n(0u8, 64));
    let err = server.infer_bytes(&huge).unwrap_err().to_string();
    assert!(err.contains("over the limit of 1048576"), "{err}");
    // Wrong kind: an output, a client spec, a secret key.
    let out = server.infer_bytes(&blob).unwrap();
    assert!(server
        .infer_bytes(&out)
        .unwrap_err()
        .to_string()
        .contains("expected EncryptedInput"));
    assert!(server
        .infer_bytes(&client.spec().to_bytes().unwrap())
        .is_err());
    let key = client.export_secret_key().unwrap();
    let err = server.infer_bytes(&key).unwrap_err().to_string();
    assert!(err.contains("secret key"), "{err}");
    assert!(ServerModel::from_bytes(&key).is_err());

    // Outputs: corrupted or truncated results are refused by the client too.
    let mut bad_out = out.clone();
    bad_out[20] ^= 0x80;
    assert!(EncryptedOutput::from_bytes(&bad_out).is_err());
    assert!(EncryptedOutput::from_bytes(&out[..out.len() - 5]).is_err());
    let good = EncryptedOutput::from_bytes(&out).unwrap();
    assert_eq!(
        client.decrypt_scores(&good).unwrap(),
        m.simulate(&row).unwrap()
    );
}

#[test]
fn secret_key_roundtrips_only_on_the_client_side() {
    let m = model("data/iris.csv", 8);
    let (client, server) = m.keygen().unwrap();
    let key = client.export_secret_key().unwrap();
    let restored = fhe_ml::client::Client::with_secret_key(m.client_spec(), &key).unwrap();
    let row = [5.1, 3.5, 1.4, 0.2];
    let out = server.infer(&client.encrypt(&row).unwrap()).unwrap();
    assert_eq!(
        restored.decrypt_scores(&out).unwrap(),
        m.simulate(&row).unwrap()
    );
    // A key for another model is refused.
    let other = model("data/iris.csv", 6);
    assert!(fhe_ml::client::Client::with_secret_key(other.client_spec(), &key).is_err());
}

#[test]
fn crafted_blobs_with_the_right_model_id_but_wrong_shape_are_refused() {
    use fhe_ml::fhe::wire::{open, seal, Kind};
    type Input = ([u8; 16], Option<[u8; 16]>, u128, u32, u32, Vec<u8>);
    type Output = ([u8; 16], OutputMode, u32, u32, u32, Vec<u8>);
    let m = model("data/breast_cancer.csv", 8);
    let (client, server) = m.keygen().unwrap();
    let row = vec![15.0; 30];
    let good: Input = open(
        Kind::EncryptedInput,
        &client.encrypt(&row).unwrap().to_bytes().unwrap(),
    )
    .unwrap();
    let (id, key, seed, bits, n, bodies) = good.clone();
    for crafted in [
        (id, key, seed, bits + 1, n, bodies.clone()),
        (id, key, seed, bits, n + 1, bodies.clone()),
        (id, key, seed, bits, u32::MAX, bodies.clone()),
        (id, key, seed, bits, n, bodies[..bodies.len() - 1].to_vec()),
        (id, key, seed, bits, n, Vec::new()),
        (id, key, seed, 0, 0, Vec::new()),
    ] {
        let blob = seal(Kind::EncryptedInput, &crafted).unwrap();
        assert!(
            server.infer_bytes(&blob).is_err(),
            "{:?}",
            (crafted.3, crafted.4)
        );
    }
    let out_blob = server
        .infer_bytes(&seal(Kind::EncryptedInput, &good).unwrap())
        .unwrap();
    let (oid, mode, obits, on, odim, coeffs): Output =
        open(Kind::EncryptedOutput, &out_blob).unwrap();
    assert_eq!(mode, OutputMode::Scores);
    for crafted in [
        (oid, mode, obits + 1, on, odim, coeffs.clone()),
        (oid, mode, obits, on + 1, odim, coeffs.clone()),
        (oid, mode, obits, on, odim - 1, coeffs.clone()),
        (oid, mode, obits, on, odim, coeffs[1..].to_vec()),
        (oid, mode, 0, 0, 0, Vec::new()),
        // A label result offered to a scores client (and one of a label's shape).
        (oid, OutputMode::Label, obits, on, odim, coeffs.clone()),
        (
            oid,
            OutputMode::Label,
            16,
            1,
            odim,
            vec![0; (odim as usize + 1) * 2],
        ),
    ] {
        let out =
            EncryptedOutput::from_bytes(&seal(Kind::EncryptedOutput, &crafted).unwrap()).unwrap();
        assert!(client.decrypt(&out).is_err());
    }
}

#[test]
fn crafted_models_and_specs_are_refused() {
    let m = model("data/iris.csv", 8);
    // A server model whose layer shape lies, or whose parameters are not a known tfhe set.
    let mut bad = m.server_model();
    let fhe_ml::program::Step::Linear(l) = &mut bad.program.steps[0] else {
        unreachable!("a linear model")
    };
    l.weights.pop();
    assert!(Server::new(bad).is_err());
    let mut bad = m.server_model();
    bad.plan.params.polynomial_size = 1024;
    assert!(Server::new(bad)
        .unwrap_err()
        .to_string()
        .contains("unknown parameter set"));
    let mut bad = m.server_model();
    bad.plan.output_bits -= 1;
    assert!(Server::new(bad).is_err());
    // A label head that is not the one the plan derives (fewer comparison scales), or one
    // that is not the last step, is refused before any key is expanded.
    let label = m.clone().with_output(OutputMode::Label).unwrap();
    let client = Client::new_seeded(label.client_spec(), 3).unwrap();
    let key = client.evaluation_key().unwrap();
    let mut bad = label.server_model();
    let Some(fhe_ml::program::Step::Label(head)) = bad.program.steps.last_mut() else {
        unreachable!("label mode ends in the label head")
    };
    head.levels.pop();
    let err = Server::with_evaluation_key(bad, &key).unwrap_err();
    assert!(err.to_string().contains("label head"), "{err}");
    let mut bad = label.server_model();
    let head = bad.program.steps.pop().unwrap();
    bad.program.steps.insert(0, head);
    assert!(Server::with_evaluation_key(bad, &key).is_err());
    // A client spec with an empty quantizer or impossible plan.
    let mut spec = m.client_spec();
    spec.quantizer.step.clear();
    assert!(fhe_ml::client::Client::new(spec).is_err());
    let mut spec = m.client_spec();
    spec.plan.delta_log2 = 70;
    assert!(fhe_ml::client::Client::new(spec.clone()).is_err());
    assert!(ClientSpec::from_bytes(
        &fhe_ml::fhe::wire::seal(fhe_ml::fhe::wire::Kind::ClientSpec, &spec).unwrap()
    )
    .is_err());
    // The genuine ones round-trip.
    let spec = ClientSpec::from_bytes(&m.client_spec().to_bytes().unwrap()).unwrap();
    let server =
        Server::new(ServerModel::from_bytes(&m.server_model().to_bytes().unwrap()).unwrap())
            .unwrap();
    let client = fhe_ml::client::Client::new(spec).unwrap();
    let row = [6.0, 3.0, 4.5, 1.5];
    let out = server.infer(&client.encrypt(&row).unwrap()).unwrap();
    assert_eq!(
        client.decrypt_scores(&out).unwrap(),
        m.simulate(&row).unwrap()
    );
}
