//! The CSV reader on any text (delimiters, quotes, decimal commas, categories, missing
//! values), then the split a user's table goes through.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(table) = fhe_ml::data::parse_csv_str(&text, "fuzz") {
        let _ = table.split(0.25, 1);
        let _ = table.split_regression(0.25, 1);
    }
});
