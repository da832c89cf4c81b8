#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zipgate::fuzzing::json_net(data));
