#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zipgate::fuzzing::dropbox_arg(data));
