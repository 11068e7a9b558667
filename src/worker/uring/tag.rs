//! What an io_uring completion is for: the `Tag` of its operation and the
//! (slot, generation) of the record it names, packed into user_data and
//! unpacked in one place.
//!
//! Owner: the io_uring driver. Layout of user_data: bits 63..32 the slot
//! (a conn, a mux socket, a listener index or a timer sequence number),
//! 31..16 the slot's generation, 15..0 the tag's code. Invariant: `decode`
//! inverts `ud` for every tag; a code no tag has (never submitted by us)
//! decodes to `None` and the completion is ignored.

use crate::session::Side;

/// The operation a completion belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tag {
    /// A listener's multishot accept (slot: listener index).
    Accept,
    /// A tcp/mongos relay's recv or send on one side of the pair.
    Recv(Side),
    Send(Side),
    /// A relay's backend connect and its linked timeout.
    Connect,
    LinkTimeout,
    /// A cancel or timeout removal: nothing to do on completion.
    Cancel,
    /// The worker's wake eventfd read.
    Wake,
    /// The drain deadline (one per process lifetime).
    Drain,
    /// A relay's deadline timer (`timer.rs`).
    Timer,
    /// The stats tick of multiplexed pools.
    Tick,
    /// The deadline timer of multiplexed sessions (slot: its sequence).
    MuxTimer,
    /// The end of an accept pause (`listen.rs`).
    AcceptResume,
    /// A multiplexed pool's socket: recv, send, backend connect (`mux.rs`).
    MuxRecv,
    MuxSend,
    MuxConnect,
    /// An idle plaintext backend's readiness poll, armed in place of its
    /// recv while its buffer is released (`mux_recv.rs`).
    MuxPark,
}

impl Tag {
    #[inline]
    const fn code(self) -> u16 {
        match self {
            Tag::Accept => 1,
            Tag::Recv(Side::Client) => 2,
            Tag::Recv(Side::Backend) => 3,
            Tag::Send(Side::Client) => 4,
            Tag::Send(Side::Backend) => 5,
            Tag::Connect => 6,
            Tag::LinkTimeout => 7,
            Tag::Cancel => 8,
            Tag::Wake => 9,
            Tag::Drain => 10,
            Tag::Timer => 11,
            Tag::Tick => 12,
            Tag::MuxTimer => 13,
            Tag::AcceptResume => 14,
            Tag::MuxRecv => 15,
            Tag::MuxSend => 16,
            Tag::MuxConnect => 17,
            Tag::MuxPark => 18,
        }
    }

    #[inline]
    fn from_code(code: u16) -> Option<Tag> {
        Some(match code {
            1 => Tag::Accept,
            2 => Tag::Recv(Side::Client),
            3 => Tag::Recv(Side::Backend),
            4 => Tag::Send(Side::Client),
            5 => Tag::Send(Side::Backend),
            6 => Tag::Connect,
            7 => Tag::LinkTimeout,
            8 => Tag::Cancel,
            9 => Tag::Wake,
            10 => Tag::Drain,
            11 => Tag::Timer,
            12 => Tag::Tick,
            13 => Tag::MuxTimer,
            14 => Tag::AcceptResume,
            15 => Tag::MuxRecv,
            16 => Tag::MuxSend,
            17 => Tag::MuxConnect,
            18 => Tag::MuxPark,
            _ => return None,
        })
    }

    /// The user_data of this operation on record (`slot`, `gen`).
    #[inline]
    pub(super) const fn ud(self, slot: u32, gen: u16) -> u64 {
        (slot as u64) << 32 | (gen as u64) << 16 | self.code() as u64
    }

    /// The user_data of an operation that names no record.
    #[inline]
    pub(super) const fn bare(self) -> u64 {
        self.ud(0, 0)
    }

    /// Unpacks user_data: the tag, the slot and its generation.
    #[inline]
    pub(super) fn decode(u: u64) -> Option<(Tag, u32, u16)> {
        Some((Tag::from_code(u as u16)?, (u >> 32) as u32, (u >> 16) as u16))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Tag; 18] = [
        Tag::Accept,
        Tag::Recv(Side::Client),
        Tag::Recv(Side::Backend),
        Tag::Send(Side::Client),
        Tag::Send(Side::Backend),
        Tag::Connect,
        Tag::LinkTimeout,
        Tag::Cancel,
        Tag::Wake,
        Tag::Drain,
        Tag::Timer,
        Tag::Tick,
        Tag::MuxTimer,
        Tag::AcceptResume,
        Tag::MuxRecv,
        Tag::MuxSend,
        Tag::MuxConnect,
        Tag::MuxPark,
    ];

    #[test]
    fn every_tag_round_trips_with_extreme_slots_and_generations() {
        for tag in ALL {
            for (slot, gen) in [(0, 0), (1, 1), (u32::MAX, u16::MAX), (0x8000_0001, 0x7fff)] {
                assert_eq!(Tag::decode(tag.ud(slot, gen)), Some((tag, slot, gen)), "{tag:?}");
            }
        }
    }

    #[test]
    fn codes_are_distinct_and_unknown_codes_decode_to_none() {
        let mut codes: Vec<u16> = ALL.iter().map(|t| t.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ALL.len());
        assert_eq!(Tag::decode(0), None);
        assert_eq!(Tag::decode(u64::from(u16::MAX)), None);
        assert_eq!(Tag::decode(7 << 32 | 19), None);
    }
}
