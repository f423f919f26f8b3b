#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bodycamd::fuzzing::http_headers(data));
