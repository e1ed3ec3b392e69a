//! Flakes, builds and generations: the [`FlakeService`] seam the UI, API and CLI use, and its
//! implementation over `flakeboot_nix` ([`NixFlakeService`]).

mod nix;
mod service;

pub use nix::NixFlakeService;
pub use service::{BuildProgressView, FlakeRemoved, FlakeService, FlakeServiceError};
