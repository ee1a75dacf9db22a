//! TODO
pub struct Context;
