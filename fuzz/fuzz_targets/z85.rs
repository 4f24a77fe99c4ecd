#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| zmtp_security::fuzz::z85(data));
