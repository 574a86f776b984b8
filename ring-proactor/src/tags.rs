//! [`Tags`]: the unpredictable high word of every request's `user_data`.

use std::io;

/// Unpredictable 32-bit tags: a SplitMix64 sequence from a seed drawn from
/// `getrandom(2)` (a few instructions per tag, no syscall after the
/// first). What a forger would have to guess is the seed; but a live
/// multishot request's `user_data` can be read in `/proc/self/fdinfo` of
/// the ring's fd while its CQEs wait in the CQ, so the tags are defense in
/// depth against buggy unsafe code (forging needs an unsafe push), not a
/// secret.
#[derive(Default)]
pub(crate) struct Tags {
    state: u64,
    seeded: bool,
}

impl Tags {
    #[inline]
    pub(crate) fn next(&mut self) -> u32 {
        if !self.seeded {
            let mut seed = [0u32; 2];
            fill_random(&mut seed);
            self.state = (u64::from(seed[0]) << 32) | u64::from(seed[1]);
            self.seeded = true;
        }
        // SplitMix64 (Steele, Lea, Flood 2014).
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as u32
    }
}

/// Fills `words` from the kernel's random source (`getrandom(2)`); if that
/// fails (a seccomp filter, say), from std's randomly keyed hasher.
pub(crate) fn fill_random(words: &mut [u32]) {
    let bytes = std::mem::size_of_val(words);
    let mut done = 0;
    while done < bytes {
        // SAFETY: the range `[done, bytes)` of `words` is writable memory
        // this function borrows mutably; getrandom writes at most `len`
        // bytes there.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getrandom,
                words.as_mut_ptr().cast::<u8>().add(done),
                bytes - done,
                0,
            )
        };
        if n > 0 {
            done += n as usize;
        } else if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        } else {
            use std::hash::{BuildHasher, Hasher};
            let keyed = std::collections::hash_map::RandomState::new();
            for (i, w) in words.iter_mut().enumerate() {
                let mut h = keyed.build_hasher();
                h.write_usize(i);
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
                h.write_u128(now.map_or(0, |d| d.as_nanos()));
                *w ^= h.finish() as u32;
            }
            return;
        }
    }
}
