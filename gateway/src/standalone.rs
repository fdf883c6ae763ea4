//! TODO: standalone
