//! The fuzz targets' allocator: the system's, except that a single allocation over
//! [`LIMIT_MB`] is a finding (unbounded growth: a buffer sized from a packet field, a queue that
//! keeps doubling). It prints the allocation's backtrace and aborts; libFuzzer keeps the input.
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

pub const LIMIT_MB: usize = 128;

pub struct Guard;

std::thread_local! {
    static REPORTING: Cell<bool> = const { Cell::new(false) };
}

fn check(size: usize) {
    if size > LIMIT_MB << 20 && !REPORTING.with(|r| r.replace(true)) {
        eprintln!("an allocation of {} MB (limit {LIMIT_MB} MB):\n{}", size >> 20, std::backtrace::Backtrace::force_capture());
        std::process::abort();
    }
}

unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: forwarded as given.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: forwarded as given.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as given.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        // SAFETY: forwarded as given.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
