//! The tenants file `serve --auth` reads.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(tenants) = fhe_ml::auth::Tenants::parse(&text) {
        let _ = tenants.authenticate(&text);
    }
});
