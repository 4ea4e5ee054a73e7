//! Any string: `duration::parse` returns, never panics, and what it accepts
//! formats back to the same duration.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seawall_core::duration;

fuzz_target!(|input: &str| {
    if let Ok(parsed) = duration::parse(input) {
        let written = duration::format(parsed);
        assert_eq!(duration::parse(&written), Ok(parsed), "{input:?} -> {written:?}");
    }
});
