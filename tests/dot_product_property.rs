//! Property: decrypting an encrypted dot product gives the clear one, for random weights and
//! inputs anywhere in range, including the extremes the noise bounds are planned for.

use fhe_ml::client::Client;
use fhe_ml::data::Schema;
use fhe_ml::fhe::{EncodingPlan, LeveledParameters, OutputMode};
use fhe_ml::program::{Decoder, LinearLayer, OutputKind, Program, Step};
use fhe_ml::protocol::ClientSpec;
use fhe_ml::protocol::ServerModel;
use fhe_ml::quant::InputQuantizer;
use fhe_ml::server::Server;
use proptest::prelude::*;

fn pair(layer: LinearLayer, input_bits: u32) -> (Client, Server, Program) {
    let program = Program {
        n_inputs: layer.n_inputs,
        input_bits,
        steps: vec![Step::Linear(layer.clone())],
    };
    let plan = EncodingPlan::for_program(LeveledParameters::default(), &program).unwrap();
    let (err, delta) = plan.error_bound(layer.max_row_l1());
    assert!(err <= delta / 4);
    let model_id = [7u8; 16];
    let server = Server::new(ServerModel {
        model_id,
        program: program.clone(),
        plan: plan.clone(),
    })
    .unwrap();
    let names: Vec<String> = (0..layer.n_inputs).map(|i| format!("x{i}")).collect();
    let spec = ClientSpec {
        needs_evaluation_key: false,
        output: OutputMode::Scores,
        model_id,
        name: "property".into(),
        schema: Schema::numeric(&names),
        feature_names: names,
        quantizer: InputQuantizer {
            bits: input_bits,
            low: vec![0.0; layer.n_inputs],
            step: vec![1.0; layer.n_inputs],
            edges: Vec::new(),
        },
        decoder: Decoder {
            kind: OutputKind::Multiclass {
                classes: (0..layer.n_outputs as i64).collect(),
            },
            scale: 1.0,
            offset: 0.0,
            link: Default::default(),
        },
        plan,
    };
    (Client::new(spec).unwrap(), server, program)
}

fn case() -> impl Strategy<Value = (u32, usize, usize, Vec<i64>, Vec<i64>, Vec<u64>)> {
    (2u32..=10, 1usize..=80, 1usize..=4).prop_flat_map(|(bits, d, k)| {
        let w_max = (1i64 << (bits - 1)) - 1;
        (
            Just(bits),
            Just(d),
            Just(k),
            prop::collection::vec(-w_max..=w_max, d * k),
            prop::collection::vec(-100_000i64..=100_000, k),
            prop::collection::vec(0u64..(1u64 << bits), d),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn encrypted_dot_equals_clear((bits, d, k, w, b, x) in case()) {
        let layer = LinearLayer::new(d, k, w, b).unwrap();
        let (client, server, program) = pair(layer, bits);
        let out = server.infer(&client.encrypt_quantized(&x).unwrap()).unwrap();
        prop_assert_eq!(client.decrypt_scores(&out).unwrap(), program.simulate(&x).unwrap());
    }
}

#[test]
fn extreme_weights_and_inputs_decrypt_exactly() {
    // Every weight at ±max and inputs at 0 or max: the largest scores and noise the plan
    // accepts for 8-bit quantization of 256 features.
    let bits = 8;
    let d = 256;
    let w_max = (1i64 << (bits - 1)) - 1;
    let weights: Vec<i64> = (0..2 * d)
        .map(|i| if i % 3 == 0 { -w_max } else { w_max })
        .collect();
    let layer = LinearLayer::new(d, 2, weights, vec![w_max, -w_max]).unwrap();
    let (client, server, program) = pair(layer, bits);
    let max = (1u64 << bits) - 1;
    for x in [
        vec![max; d],
        vec![0; d],
        (0..d as u64).map(|i| (i % 2) * max).collect(),
    ] {
        let out = server
            .infer(&client.encrypt_quantized(&x).unwrap())
            .unwrap();
        assert_eq!(
            client.decrypt_scores(&out).unwrap(),
            program.simulate(&x).unwrap()
        );
    }
}

#[test]
fn plans_beyond_the_noise_budget_are_refused() {
    // 16-bit weights and inputs over 2048 features cannot decrypt exactly at q = 2^64.
    let bits = 16;
    let d = 2048;
    let layer = LinearLayer::new(d, 1, vec![(1 << 15) - 1; d], vec![0]).unwrap();
    let program = Program {
        n_inputs: d,
        input_bits: bits,
        steps: vec![Step::Linear(layer.clone())],
    };
    let err = EncodingPlan::for_program(LeveledParameters::default(), &program).unwrap_err();
    assert!(err.to_string().contains("fewer bits"), "{err}");
}
