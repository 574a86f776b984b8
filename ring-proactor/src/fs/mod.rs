//! Files as the Proactor's handles: [`File`] (opened with [`OpenOptions`],
//! described by [`Metadata`]), whose reads and writes are ops with owned
//! buffers at explicit offsets, as in tokio-uring and monoio. A file is a
//! [`Proactor`](crate::Proactor)'s (`File`, the default) or a
//! [`LocalProactor`](crate::LocalProactor)'s (`File<LocalProactor>`): see
//! [`Runtime`](crate::Runtime).
//!
//! ```
//! use ring_io_proactor::{Proactor, ProactorConfig, block_on, fs::File};
//!
//! let p = Proactor::new(ProactorConfig::new(8))?;
//! let path = std::env::temp_dir().join(format!("fs-doc-{}", std::process::id()));
//! let copy = block_on(async {
//!     std::fs::write(&path, "contents")?;
//!     let file = File::open(&p, &path).await?;
//!     let len = file.metadata().await?.len();
//!     let (res, buf) = file.read_exact_at(Vec::with_capacity(len as usize), 0).await;
//!     res.map(|()| buf)
//! })?;
//! assert_eq!(copy, b"contents");
//! std::fs::remove_file(&path)?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! The same on a LocalProactor (its `block_on` drives it):
//!
//! ```
//! use ring_io_proactor::{LocalProactor, ProactorConfig, fs::File};
//!
//! let p = LocalProactor::new(ProactorConfig::new(8))?;
//! let path = std::env::temp_dir().join(format!("fs-local-doc-{}", std::process::id()));
//! let copy = p.block_on(async {
//!     std::fs::write(&path, "contents")?;
//!     let file = File::open(&p, &path).await?;
//!     let len = file.metadata().await?.len();
//!     let (res, buf) = file.read_exact_at(Vec::with_capacity(len as usize), 0).await;
//!     res.map(|()| buf)
//! })?;
//! assert_eq!(copy, b"contents");
//! std::fs::remove_file(&path)?;
//! # Ok::<(), std::io::Error>(())
//! ```

mod file;
pub(crate) mod metadata;
mod open_options;

pub use file::File;
pub use metadata::{FileType, Metadata};
pub use open_options::OpenOptions;
