//! Every binary blob a server or client reads from the network or a file. The first byte
//! picks the reader and whether the rest is a whole blob (the envelope's checks: magic,
//! version, kind, length, digest) or a payload sealed here in a valid envelope, so the fuzzer
//! reaches each kind's decoder and what is built on it (a server, a client spec's checks)
//! instead of stopping at the digest. None may panic.
#![no_main]

use fhe_ml::fhe::wire::{self, seal_payload, Kind};
use fhe_ml::fhe::EvaluationKey;
use fhe_ml::protocol::{ClientSpec, EncryptedInput, EncryptedOutput, ServerModel};
use fhe_ml::server::Server;
use fhe_ml::service::ModelBundle;
use libfuzzer_sys::fuzz_target;

const KINDS: [Kind; 8] = [
    Kind::EncryptedInput,
    Kind::EncryptedOutput,
    Kind::ServerModel,
    Kind::ClientSpec,
    Kind::EvaluationKey,
    Kind::ModelBundle,
    Kind::InputBatch,
    Kind::OutputBatch,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let kind = KINDS[(pick % 8) as usize];
    let sealed;
    let bytes = if pick & 0x80 != 0 {
        sealed = seal_payload(kind, rest);
        &sealed[..]
    } else {
        rest
    };
    match kind {
        Kind::EncryptedInput => {
            let _ = EncryptedInput::from_bytes(bytes);
        }
        Kind::EncryptedOutput => {
            let _ = EncryptedOutput::from_bytes(bytes);
        }
        Kind::ServerModel => {
            if let Ok(model) = ServerModel::from_bytes(bytes) {
                let _ = Server::new(model);
            }
        }
        Kind::ClientSpec => {
            let _ = ClientSpec::from_bytes(bytes);
        }
        Kind::EvaluationKey => {
            let _ = EvaluationKey::from_bytes(bytes);
        }
        Kind::ModelBundle => {
            if let Ok(bundle) = ModelBundle::from_bytes(bytes) {
                let _ = fhe_ml::service::router(vec![bundle], Default::default());
            }
        }
        Kind::InputBatch => {
            let _: fhe_ml::Result<Vec<EncryptedInput>> = wire::open(Kind::InputBatch, bytes);
        }
        _ => {
            let _: fhe_ml::Result<Vec<EncryptedOutput>> = wire::open(Kind::OutputBatch, bytes);
        }
    }
});
