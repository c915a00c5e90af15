//! TODO-doc
pub mod h1;
