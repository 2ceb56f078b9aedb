//! The ONNX importer on any bytes (protobuf decoding, then the graph walk, tensors and tree
//! attributes), then the float model on one row: errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(model) = fhe_ml::import::onnx(data) {
        let row = vec![0.5; model.n_features().min(4096)];
        let _ = model.predict(&row);
        let _ = model.describe();
    }
});
