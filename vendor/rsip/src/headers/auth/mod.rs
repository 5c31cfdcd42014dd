pub mod algorithm;
pub mod qop;
pub mod scheme;

pub use algorithm::Algorithm;
pub use qop::{AuthQop, Qop};
pub use scheme::Scheme;
