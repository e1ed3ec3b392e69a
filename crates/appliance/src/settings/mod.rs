//! The appliance's settings: the config file's, overlaid by what was saved in the UI or API.
//! [`from_config`] makes the saved form from a file, [`check`] refuses what the config's rules
//! refuse (before anything is saved), [`plan`] decides what a change needs (pure), [`apply`]
//! applies it to the running services.

pub mod apply;
pub mod check;
pub mod from_config;
pub mod plan;
