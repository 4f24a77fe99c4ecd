#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| zmtp_security::fuzz::noise_server(zmtp_security::NoisePattern::IK, data));
