//! TODO: listeners
