//! Arbitrary bytes as a config file: `parse` must return Ok or an error
//! naming a line, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(src) = std::str::from_utf8(data) {
        if let Err(e) = puerta::config::parse(src, std::path::Path::new("fuzz.toml")) {
            assert!(e.to_string().starts_with("fuzz.toml"));
        }
    }
});
