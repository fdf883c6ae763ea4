//! TODO: filters
