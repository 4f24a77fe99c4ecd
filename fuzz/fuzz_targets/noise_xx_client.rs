#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| zmtp_security::fuzz::noise_client(zmtp_security::NoisePattern::XX, data));
