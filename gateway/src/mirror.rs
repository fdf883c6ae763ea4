//! TODO: mirror
