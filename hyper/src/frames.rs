//! HTTP/2 frame boundaries in the bytes hyper's task reads: the client's
//! own view of what the server sent, for what hyper does not tell (the
//! server's first frame, and a GOAWAY).
//!
//! Every frame starts with a 9-byte header (RFC 9113 section 4.1): a
//! 24-bit payload length, the type, the flags and the stream id. The scan
//! follows the headers across reads of any size and skips the payloads;
//! it never copies more than a header.

/// A frame header, as the scan reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameHead {
    pub(crate) kind: u8,
    pub(crate) stream: u32,
    /// The first frame the connection read.
    pub(crate) first: bool,
}

/// A frame's type: SETTINGS.
pub(crate) const SETTINGS: u8 = 0x4;
/// A frame's type: GOAWAY.
pub(crate) const GOAWAY: u8 = 0x7;

/// Where the scan is in the stream of frames.
#[derive(Clone, Debug, Default)]
pub(crate) struct FrameScan {
    /// The header being read, and how much of it has arrived.
    header: [u8; 9],
    have: usize,
    /// Payload bytes still to skip.
    skip: usize,
    /// Headers seen.
    frames: u64,
}

impl FrameScan {
    /// Follows `bytes`, the next ones read, calling `seen` with each
    /// frame header completed in them.
    pub(crate) fn feed(&mut self, mut bytes: &[u8], mut seen: impl FnMut(FrameHead)) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (9 - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == 9 {
                seen(self.complete());
            }
        }
    }

    /// Whether `bytes`, the next ones after those fed, hold a GOAWAY
    /// frame's header; the scan itself does not move.
    pub(crate) fn sees_goaway_in(&self, bytes: &[u8]) -> bool {
        let mut ahead = self.clone();
        let mut goaway = false;
        ahead.feed(bytes, |head| goaway |= head.kind == GOAWAY);
        goaway
    }

    /// The header just completed; the scan moves on to its payload.
    fn complete(&mut self) -> FrameHead {
        let h = &self.header;
        self.skip = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
        self.have = 0;
        self.frames += 1;
        FrameHead {
            kind: h[3],
            stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
            first: self.frames == 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, 0];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn headers_are_found_across_reads_of_any_size() {
        let mut bytes = frame(SETTINGS, 0, &[0, 3, 0, 0, 0, 8]);
        bytes.extend(frame(0x1, 1, &[7; 300]));
        bytes.extend(frame(GOAWAY, 0, &[0, 0, 0, 1, 0, 0, 0, 0]));
        for size in [1, 2, 8, 9, 10, 64, bytes.len()] {
            let mut scan = FrameScan::default();
            let mut seen = Vec::new();
            for chunk in bytes.chunks(size) {
                scan.feed(chunk, |h| seen.push(h));
            }
            let kinds: Vec<_> = seen.iter().map(|h| (h.kind, h.stream, h.first)).collect();
            assert_eq!(
                kinds,
                [(SETTINGS, 0, true), (0x1, 1, false), (GOAWAY, 0, false)],
                "reads of {size}"
            );
        }
    }

    #[test]
    fn a_goaway_ahead_is_seen_from_wherever_the_scan_stands() {
        let mut bytes = frame(0x6, 0, &[1; 8]);
        bytes.extend(frame(GOAWAY, 0, &[0, 0, 0, 1, 0, 0, 0, 0]));
        for split in 0..bytes.len() {
            let mut scan = FrameScan::default();
            scan.feed(&bytes[..split], |_| {});
            let goaway_ahead = split < 17 + 9; // its header not yet all fed
            assert_eq!(
                scan.sees_goaway_in(&bytes[split..]),
                goaway_ahead,
                "split at {split}"
            );
        }
        let mut scan = FrameScan::default();
        scan.feed(&frame(0x6, 0, &[1; 8]), |_| {});
        assert!(
            !scan.sees_goaway_in(&frame(0x8, 0, &[0, 0, 0, 1])),
            "a WINDOW_UPDATE"
        );
    }

    #[test]
    fn an_http1_answer_is_not_a_settings_frame() {
        let mut scan = FrameScan::default();
        let mut seen = Vec::new();
        scan.feed(b"HTTP/1.1 400 Bad Request\r\n", |h| seen.push(h));
        assert!(seen[0].first && seen[0].kind != SETTINGS);
    }
}
