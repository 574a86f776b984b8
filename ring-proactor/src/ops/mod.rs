//! The ops, grouped by what they act on; each is a method of [`Proactor`](crate::Proactor).

mod fs;
mod misc;
mod net;
