#![no_main]

#[global_allocator]
static GUARD: atome_fuzz::guard::Guard = atome_fuzz::guard::Guard;

libfuzzer_sys::fuzz_target!(|data: &[u8]| atome_fuzz::signaling::run(data));
