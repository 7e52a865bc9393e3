//! diffc: lossy image compression with Gaussian diffusion (DiffC) and reverse channel coding.
#![warn(missing_docs)]

pub mod data;
pub mod error;
pub mod prior;
pub mod train;

pub use error::{Error, Result};
