#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bodycamd::fuzzing::recover_walk(data));
