//! Training of the neural prior.
