//! The neural denoiser (owned by the training work; see train.rs).
