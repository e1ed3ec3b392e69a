//! Release builds place the functions start-up runs together at the start of `.text`
//! (startup-order.txt, written by scripts/startup-order.sh): the kernel maps code 64 KiB
//! around each page that faults, so start-up code spread over the binary made most of the idle
//! RSS (docs/benchmarks.md). The order is lld's `--symbol-ordering-file`, which rustc's
//! default linker on x86_64 Linux is; names the linker does not find are ignored, so a stale
//! file costs memory, never a build (`scripts/startup-order.sh check` tells).

use std::env;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=startup-order.txt");
    let order =
        Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join("startup-order.txt");
    let release = env::var("PROFILE").as_deref() == Ok("release");
    let target_is = |key: &str, value: &str| env::var(key).as_deref() == Ok(value);
    // rust-lld is the default linker of x86_64-unknown-linux-gnu (Rust 1.90); GNU ld, which
    // other targets may link with, does not know the option.
    let lld = target_is("CARGO_CFG_TARGET_ARCH", "x86_64")
        && target_is("CARGO_CFG_TARGET_OS", "linux")
        && target_is("CARGO_CFG_TARGET_ENV", "gnu");
    if release && lld && order.is_file() {
        println!(
            "cargo:rustc-link-arg-bin=flakeboot=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bin=flakeboot=-Wl,--no-warn-symbol-ordering");
    }
}
