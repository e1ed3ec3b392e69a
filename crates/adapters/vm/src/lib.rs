//! The pre-flight VM (issue #16): one QEMU machine that netboots a candidate generation.
//!
//! - [`args`]: QEMU's command line from a [`VmSpec`] (pure).
//! - [`accel`]: KVM when `/dev/kvm` opens read-write, TCG otherwise.
//! - [`process`]: QEMU as a direct child (arguments only, never a shell) in its own process
//!   group; its serial console (stdout) copied into an owner-only log of bounded size; killed
//!   (the whole group) and reaped on timeout, on stop, or when dropped.

pub mod accel;
pub mod args;
pub mod process;

pub use accel::{Accel, detect_accel};
pub use args::{Firmware, Nic, VmSpec};
pub use process::{RunningVm, VmError};
