//! TODO: echo
