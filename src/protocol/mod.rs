//! Sans-IO wire protocols: bytes in, parsed views and decisions out.
//!
//! Nothing here touches a socket or a clock. Parsers borrow from the bytes
//! they are given and never rewrite them: Puerta forwards messages
//! unchanged and only looks at them.

pub mod mongo;
pub mod proxy;
