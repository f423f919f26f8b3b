#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bodycamd::fuzzing::export_manifest(data));
