//! Every binary blob a server or client reads from the network or a file: the envelope, then
//! each kind's decoder, and what is built from a decoded model (a server, a client spec's
//! checks). The first byte picks the reader; none may panic.
#![no_main]

use fhe_ml::fhe::wire::{self, Kind};
use fhe_ml::fhe::EvaluationKey;
use fhe_ml::protocol::{ClientSpec, EncryptedInput, EncryptedOutput, ServerModel};
use fhe_ml::server::Server;
use fhe_ml::service::ModelBundle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    match pick % 8 {
        0 => {
            let _ = EncryptedInput::from_bytes(bytes);
        }
        1 => {
            let _ = EncryptedOutput::from_bytes(bytes);
        }
        2 => {
            if let Ok(model) = ServerModel::from_bytes(bytes) {
                let _ = Server::new(model);
            }
        }
        3 => {
            let _ = ClientSpec::from_bytes(bytes);
        }
        4 => {
            let _ = EvaluationKey::from_bytes(bytes);
        }
        5 => {
            let _ = ModelBundle::from_bytes(bytes);
        }
        6 => {
            let _: fhe_ml::Result<Vec<EncryptedInput>> = wire::open(Kind::InputBatch, bytes);
        }
        _ => {
            let _: fhe_ml::Result<Vec<EncryptedOutput>> = wire::open(Kind::OutputBatch, bytes);
        }
    }
});
