//! Image folders for training and validation.
