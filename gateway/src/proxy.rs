//! TODO: proxy
