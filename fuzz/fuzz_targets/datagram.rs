#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| atome_fuzz::datagram_target(data));
