//! MLLP framing: an incremental decoder (bytes in as they are read, events out) and the encoder.
//!
//! A frame is `0x0B` (start block), the message, `0x1C 0x0D` (end block, carriage return), as in
//! HL7's MLLP release 2. The decoder never buffers more than one frame's worth (`max_frame_bytes`)
//! plus the bytes of the last read not yet turned into events: a frame that goes over the limit
//! keeps only its first [`TOO_LARGE_PREFIX`] bytes (for its MSH, to answer it) and counts the
//! rest. Each input byte is looked at once (`memchr` finds the block characters), so a frame that
//! arrives in many reads is not rescanned. The rules for the unusual cases (a start block inside
//! a frame, an end block not followed by a carriage return, an empty frame) are in DESIGN.md,
//! "Framing".

use std::mem;

/// The start block (VT) that opens a frame.
pub const START_BLOCK: u8 = 0x0B;
/// The end block (FS) that, followed by [`CARRIAGE_RETURN`], closes a frame.
pub const END_BLOCK: u8 = 0x1C;
/// The carriage return after the end block.
pub const CARRIAGE_RETURN: u8 = 0x0D;
/// Bytes of an oversized frame kept for answering it (its MSH).
pub const TOO_LARGE_PREFIX: usize = 4096;

/// What the decoder found in the bytes pushed so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameEvent {
    /// A complete message: the bytes between the start block and the end block + CR.
    Frame(Vec<u8>),
    /// Bytes outside any frame (before a start block, or junk between frames), dropped. Count =
    /// bytes. One event covers one run of such bytes: it is emitted when the next start block
    /// arrives (or by [`FrameDecoder::finish`]), so any split of the input into reads gives the
    /// same events. A frame abandoned by a new start block, or whose end block is followed by a
    /// byte other than CR, is counted here too (its start block, content and end block).
    Discarded(usize),
    /// A frame that went over max_frame_bytes; emitted when its end block arrives. `prefix` is its
    /// first TOO_LARGE_PREFIX bytes at most (and at most max_frame_bytes: enough for its MSH, to
    /// answer it); `total` the bytes it had (its content, without the block characters).
    TooLarge { prefix: Vec<u8>, total: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between frames: every byte up to the next start block is counted in `junk`.
    Outside,
    /// After a start block. `total` content bytes so far (only the first max_frame_bytes, or
    /// the prefix once over, are kept in `content`); `end_block` when the last byte was 0x1C.
    Frame { total: usize, end_block: bool },
}

/// An incremental MLLP decoder for one connection.
#[derive(Debug)]
pub struct FrameDecoder {
    max_frame_bytes: usize,
    /// Bytes pushed and not yet decoded are `input[head..]`.
    input: Vec<u8>,
    head: usize,
    state: State,
    /// The current frame's content (all of it while within the limit, the prefix once over).
    content: Vec<u8>,
    /// Discarded bytes of the current run, not reported yet.
    junk: usize,
}

impl FrameDecoder {
    /// A decoder that accepts frames of up to `max_frame_bytes` content bytes.
    pub fn new(max_frame_bytes: usize) -> Self {
        Self {
            max_frame_bytes,
            input: Vec::new(),
            head: 0,
            state: State::Outside,
            content: Vec::new(),
            junk: 0,
        }
    }

    /// Feed bytes read from the socket (any split: a frame over several reads, several frames in
    /// one). Call [`next_event`](Self::next_event) until it returns `None` before the next push,
    /// so the decoder holds at most one read of undecoded bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.head == self.input.len() {
            self.input.clear();
        } else if self.head > 0 {
            self.input.drain(..self.head);
        }
        self.head = 0;
        self.input.extend_from_slice(bytes);
    }

    /// The next event, or None when more bytes are needed.
    pub fn next_event(&mut self) -> Option<FrameEvent> {
        loop {
            let rest = &self.input[self.head..];
            if rest.is_empty() {
                return None;
            }
            match self.state {
                State::Outside => match memchr::memchr(START_BLOCK, rest) {
                    Some(at) => {
                        self.head += at + 1;
                        let junk = mem::take(&mut self.junk) + at;
                        self.state = State::Frame {
                            total: 0,
                            end_block: false,
                        };
                        if junk > 0 {
                            return Some(FrameEvent::Discarded(junk));
                        }
                    }
                    None => {
                        self.junk += rest.len();
                        self.head = self.input.len();
                    }
                },
                State::Frame {
                    total,
                    end_block: true,
                } => {
                    if rest[0] == CARRIAGE_RETURN {
                        self.head += 1;
                        self.state = State::Outside;
                        let content = mem::take(&mut self.content);
                        return Some(if total > self.max_frame_bytes {
                            FrameEvent::TooLarge {
                                prefix: content,
                                total,
                            }
                        } else {
                            FrameEvent::Frame(content)
                        });
                    }
                    // 0x1C without CR: not a frame (HL7 content never holds 0x1C, so this is a
                    // broken sender or line noise). Drop it whole and decode this byte again
                    // outside a frame: a start block here opens the next frame.
                    self.abandon_frame(total + 2);
                }
                State::Frame {
                    total,
                    end_block: false,
                } => match memchr::memchr2(START_BLOCK, END_BLOCK, rest) {
                    Some(at) => {
                        let is_end = rest[at] == END_BLOCK;
                        self.take_content(at);
                        let total = total + at;
                        if is_end {
                            self.head += 1;
                            self.state = State::Frame {
                                total,
                                end_block: true,
                            };
                        } else {
                            // A start block inside a frame: the sender restarted. The partial
                            // frame is dropped; the start block is decoded again, outside.
                            self.abandon_frame(total + 1);
                        }
                    }
                    None => {
                        let n = rest.len();
                        self.take_content(n);
                        self.state = State::Frame {
                            total: total + n,
                            end_block: false,
                        };
                    }
                },
            }
        }
    }

    /// Whether a start block was seen and its frame has not ended (the server times a frame from
    /// its start block: slow-loris).
    pub fn in_frame(&self) -> bool {
        matches!(self.state, State::Frame { .. })
    }

    /// Bytes currently held (never more than max_frame_bytes + a read's worth; an oversized frame
    /// is NOT buffered whole: once over the limit only the prefix is kept and the rest is counted
    /// and dropped).
    pub fn buffered(&self) -> usize {
        self.input.len() - self.head + self.content.len()
    }

    /// End of the stream (the connection closed, or the frame timed out): everything held that
    /// will not become a frame — the current run of discarded bytes, an unfinished frame, and
    /// bytes not decoded yet — as one `Discarded` event (None when nothing is held). The decoder
    /// is empty afterwards and can be used again.
    pub fn finish(&mut self) -> Option<FrameEvent> {
        let mut dropped = mem::take(&mut self.junk) + (self.input.len() - self.head);
        if let State::Frame { total, end_block } = self.state {
            dropped += 1 + total + usize::from(end_block);
        }
        self.state = State::Outside;
        self.input.clear();
        self.head = 0;
        self.content = Vec::new();
        (dropped > 0).then_some(FrameEvent::Discarded(dropped))
    }

    /// Moves the next `n` undecoded bytes (content of the current frame) into the frame: kept
    /// while the frame is within the limit, only counted once it is over.
    fn take_content(&mut self, n: usize) {
        let State::Frame { total, .. } = self.state else {
            return;
        };
        let bytes = &self.input[self.head..self.head + n];
        self.head += n;
        if total + n <= self.max_frame_bytes {
            self.content.extend_from_slice(bytes);
        } else if total <= self.max_frame_bytes {
            // Going over now: keep the prefix, release the rest.
            let keep = TOO_LARGE_PREFIX.min(self.max_frame_bytes);
            if self.content.len() < keep {
                let more = (keep - self.content.len()).min(bytes.len());
                self.content.extend_from_slice(&bytes[..more]);
            }
            self.content.truncate(keep);
            self.content.shrink_to(keep);
        }
    }

    /// Drops the current frame (`bytes` = its block characters and content, for the count) and
    /// goes back to looking for a start block.
    fn abandon_frame(&mut self, bytes: usize) {
        self.junk += bytes;
        self.content.clear();
        self.state = State::Outside;
    }
}

/// The MLLP frame of one message.
pub fn encode(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 3);
    out.push(START_BLOCK);
    out.extend_from_slice(message);
    out.push(END_BLOCK);
    out.push(CARRIAGE_RETURN);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MSG: &[u8] = b"MSH|^~\\&|A|B|C|D|20240101000000||ADT^A01|1|P|2.5.1\rPID|||123\r";

    /// Pushes each chunk and drains the events after it.
    fn decode(max: usize, chunks: &[&[u8]]) -> (Vec<FrameEvent>, FrameDecoder) {
        let mut dec = FrameDecoder::new(max);
        let mut events = Vec::new();
        for chunk in chunks {
            dec.push(chunk);
            while let Some(e) = dec.next_event() {
                events.push(e);
            }
        }
        (events, dec)
    }

    fn frame(bytes: &[u8]) -> FrameEvent {
        FrameEvent::Frame(bytes.to_vec())
    }

    /// Bytes an event stands for in the input (block characters included).
    fn input_bytes(e: &FrameEvent) -> usize {
        match e {
            FrameEvent::Frame(m) => m.len() + 3,
            FrameEvent::Discarded(n) => *n,
            FrameEvent::TooLarge { total, .. } => total + 3,
        }
    }

    #[test]
    fn one_frame_in_one_read() {
        let (events, dec) = decode(1 << 20, &[&encode(MSG)]);
        assert_eq!(events, vec![frame(MSG)]);
        assert!(!dec.in_frame());
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn frame_split_across_reads_at_every_byte_position() {
        let wire = encode(MSG);
        for cut in 0..=wire.len() {
            let (events, dec) = decode(1 << 20, &[&wire[..cut], &wire[cut..]]);
            assert_eq!(events, vec![frame(MSG)], "cut at {cut}");
            assert!(!dec.in_frame(), "cut at {cut}");
        }
        // And every byte in its own read.
        let singles: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(decode(1 << 20, &singles).0, vec![frame(MSG)]);
    }

    #[test]
    fn several_frames_in_one_read() {
        let mut wire = encode(b"MSH|first");
        wire.extend(encode(b"MSH|second"));
        wire.extend(encode(b"MSH|third"));
        let (events, _) = decode(1 << 20, &[&wire]);
        assert_eq!(
            events,
            vec![
                frame(b"MSH|first"),
                frame(b"MSH|second"),
                frame(b"MSH|third")
            ]
        );
    }

    #[test]
    fn bytes_before_a_start_block_are_discarded_and_counted() {
        let mut wire = b"hello\r\n".to_vec();
        wire.extend(encode(MSG));
        let (events, _) = decode(1 << 20, &[&wire]);
        assert_eq!(events, vec![FrameEvent::Discarded(7), frame(MSG)]);
    }

    #[test]
    fn discarded_run_split_over_reads_is_one_event() {
        let (events, dec) = decode(1 << 20, &[b"abc", b"de", b"\x0bMSH", b"|x\x1c\r"]);
        assert_eq!(events, vec![FrameEvent::Discarded(5), frame(b"MSH|x")]);
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn junk_between_frames_is_discarded() {
        let mut wire = encode(b"MSH|1");
        wire.extend(b"\n\x1c\rjunk");
        wire.extend(encode(b"MSH|2"));
        let (events, _) = decode(1 << 20, &[&wire]);
        assert_eq!(
            events,
            vec![frame(b"MSH|1"), FrameEvent::Discarded(7), frame(b"MSH|2")]
        );
    }

    #[test]
    fn junk_is_reported_by_finish_when_no_frame_follows() {
        let (events, mut dec) = decode(1 << 20, &[b"GET / HTTP/1.1\r\n"]);
        assert!(events.is_empty());
        assert!(!dec.in_frame());
        assert_eq!(dec.buffered(), 0, "junk is counted, not kept");
        assert_eq!(dec.finish(), Some(FrameEvent::Discarded(16)));
        assert_eq!(dec.finish(), None);
    }

    #[test]
    fn frame_followed_by_the_start_of_the_next_one() {
        let mut wire = encode(b"MSH|1");
        wire.extend(b"\x0bMSH|2 partial");
        let (events, dec) = decode(1 << 20, &[&wire]);
        assert_eq!(events, vec![frame(b"MSH|1")]);
        assert!(dec.in_frame(), "the next frame has started");
        assert_eq!(dec.buffered(), b"MSH|2 partial".len());
        let (events, _) = decode(1 << 20, &[&wire, b" rest\x1c\r"]);
        assert_eq!(events, vec![frame(b"MSH|1"), frame(b"MSH|2 partial rest")]);
    }

    #[test]
    fn start_block_inside_a_frame_restarts_it() {
        // A sender that restarted mid-frame: the partial frame (SB + 9 bytes) is dropped.
        let (events, _) = decode(1 << 20, &[b"\x0bMSH|parti", b"\x0bMSH|whole\x1c\r"]);
        assert_eq!(events, vec![FrameEvent::Discarded(10), frame(b"MSH|whole")]);
    }

    #[test]
    fn end_block_without_carriage_return_drops_the_frame() {
        let (events, dec) = decode(1 << 20, &[b"\x0bMSH|a\x1cX\x0bMSH|b\x1c\r"]);
        // SB + 5 content + EB + the 'X' after it.
        assert_eq!(events, vec![FrameEvent::Discarded(8), frame(b"MSH|b")]);
        assert!(!dec.in_frame());
        // End block then a start block: the first frame is dropped, the second decoded.
        let (events, _) = decode(1 << 20, &[b"\x0bMSH|a\x1c", b"\x0bMSH|b\x1c\r"]);
        assert_eq!(events, vec![FrameEvent::Discarded(7), frame(b"MSH|b")]);
    }

    #[test]
    fn end_block_at_the_end_of_a_read_waits_for_the_carriage_return() {
        let mut dec = FrameDecoder::new(1 << 20);
        dec.push(b"\x0bMSH|a\x1c");
        assert_eq!(dec.next_event(), None);
        assert!(dec.in_frame());
        dec.push(b"\r");
        assert_eq!(dec.next_event(), Some(frame(b"MSH|a")));
        assert!(!dec.in_frame());
    }

    #[test]
    fn empty_frame_is_a_frame_with_no_bytes() {
        let (events, _) = decode(1 << 20, &[&encode(b""), &encode(b"MSH|x")]);
        assert_eq!(events, vec![frame(b""), frame(b"MSH|x")]);
    }

    #[test]
    fn frame_of_exactly_the_limit_is_accepted_one_more_byte_is_too_large() {
        let at_limit = vec![b'a'; 100];
        assert_eq!(decode(100, &[&encode(&at_limit)]).0, vec![frame(&at_limit)]);
        let over = vec![b'a'; 101];
        assert_eq!(
            decode(100, &[&encode(&over)]).0,
            vec![FrameEvent::TooLarge {
                prefix: vec![b'a'; 100],
                total: 101
            }]
        );
    }

    #[test]
    fn oversized_frame_is_too_large_with_its_msh_prefix() {
        let mut big = MSG.to_vec();
        big.resize(200_000, b'x');
        let wire = encode(&big);
        let chunks: Vec<&[u8]> = wire.chunks(1000).collect();
        let (events, dec) = decode(65_536, &chunks);
        let [FrameEvent::TooLarge { prefix, total }] = events.as_slice() else {
            panic!("expected one TooLarge, got {events:?}");
        };
        assert_eq!(*total, 200_000);
        assert_eq!(prefix.len(), TOO_LARGE_PREFIX);
        assert_eq!(prefix.as_slice(), &big[..TOO_LARGE_PREFIX]);
        assert!(prefix.starts_with(MSG));
        assert!(!dec.in_frame());
        // The decoder is usable afterwards.
        let (events, _) = decode(65_536, &[&wire, &encode(MSG)]);
        assert_eq!(events.len(), 2);
        assert_eq!(events[1], frame(MSG));
    }

    #[test]
    fn prefix_is_bounded_by_a_small_limit_too() {
        let (events, _) = decode(10, &[&encode(&[b'z'; 50])]);
        assert_eq!(
            events,
            vec![FrameEvent::TooLarge {
                prefix: vec![b'z'; 10],
                total: 50
            }]
        );
    }

    #[test]
    fn buffered_stays_bounded_while_megabytes_stream_in() {
        let max = 65_536;
        let read = 16 * 1024;
        let mut dec = FrameDecoder::new(max);
        dec.push(&[START_BLOCK]);
        assert_eq!(dec.next_event(), None);
        let chunk = vec![b'x'; read];
        let mut peak = 0;
        for _ in 0..(8 << 20) / read {
            dec.push(&chunk);
            peak = peak.max(dec.buffered());
            assert_eq!(dec.next_event(), None);
            assert!(dec.in_frame());
            peak = peak.max(dec.buffered());
        }
        assert!(peak <= max + read, "peak {peak}");
        assert!(dec.buffered() <= TOO_LARGE_PREFIX, "{}", dec.buffered());
        dec.push(&[END_BLOCK, CARRIAGE_RETURN]);
        match dec.next_event() {
            Some(FrameEvent::TooLarge { prefix, total }) => {
                assert_eq!(total, 8 << 20);
                assert_eq!(prefix.len(), TOO_LARGE_PREFIX);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn restart_inside_an_oversized_frame() {
        let mut wire = vec![START_BLOCK];
        wire.extend(vec![b'x'; 500]);
        wire.extend(encode(b"MSH|ok"));
        let (events, dec) = decode(100, &[&wire]);
        assert_eq!(events, vec![FrameEvent::Discarded(501), frame(b"MSH|ok")]);
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn in_frame_is_set_by_the_start_block_only() {
        let mut dec = FrameDecoder::new(1 << 20);
        dec.push(b"junk");
        assert_eq!(dec.next_event(), None);
        assert!(!dec.in_frame());
        dec.push(&[START_BLOCK]);
        assert_eq!(dec.next_event(), Some(FrameEvent::Discarded(4)));
        assert!(dec.in_frame());
    }

    #[test]
    fn finish_drops_an_unfinished_frame() {
        let (_, mut dec) = decode(1 << 20, &[b"ab\x0bMSH|never ends\x1c"]);
        // Junk "ab" was reported when the frame started; the frame is SB + 14 + EB.
        assert_eq!(dec.finish(), Some(FrameEvent::Discarded(16)));
        assert!(!dec.in_frame());
        assert_eq!(dec.buffered(), 0);
        dec.push(&encode(b"MSH|next"));
        assert_eq!(dec.next_event(), Some(frame(b"MSH|next")));
    }

    #[test]
    fn encode_wraps_in_block_characters() {
        assert_eq!(encode(b"MSH|x"), b"\x0bMSH|x\x1c\r".to_vec());
        assert_eq!(encode(b""), vec![START_BLOCK, END_BLOCK, CARRIAGE_RETURN]);
    }

    /// Cuts `wire` at the given points (taken modulo its length, sorted).
    fn chunked(wire: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
        points.sort_unstable();
        let mut out = Vec::new();
        let mut last = 0;
        for p in points {
            out.push(wire[last..p].to_vec());
            last = p;
        }
        out.push(wire[last..].to_vec());
        out
    }

    fn decode_all(max: usize, chunks: &[Vec<u8>]) -> (Vec<FrameEvent>, FrameDecoder) {
        let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        decode(max, &refs)
    }

    /// Message bytes without the block characters.
    fn message() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(|v| {
            v.into_iter()
                .filter(|b| *b != START_BLOCK && *b != END_BLOCK)
                .collect()
        })
    }

    /// Wire bytes biased towards the block characters.
    fn wire() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                4 => any::<u8>(),
                1 => Just(START_BLOCK),
                1 => Just(END_BLOCK),
                1 => Just(CARRIAGE_RETURN),
            ],
            0..400,
        )
    }

    proptest! {
        #[test]
        fn any_message_round_trips(msgs in proptest::collection::vec(message(), 1..5),
                                   cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
            let wire: Vec<u8> = msgs.iter().flat_map(|m| encode(m)).collect();
            let (events, dec) = decode_all(1 << 20, &chunked(&wire, &cuts));
            let expected: Vec<FrameEvent> = msgs.iter().map(|m| frame(m)).collect();
            prop_assert_eq!(events, expected);
            prop_assert!(!dec.in_frame());
            prop_assert_eq!(dec.buffered(), 0);
        }

        #[test]
        fn any_chunking_gives_the_same_events(wire in wire(),
                                              cuts in proptest::collection::vec(any::<usize>(), 0..10),
                                              max in 0usize..64) {
            let (whole, mut dec_whole) = decode_all(max, std::slice::from_ref(&wire));
            let (split, mut dec_split) = decode_all(max, &chunked(&wire, &cuts));
            prop_assert_eq!(&whole, &split);
            prop_assert_eq!(dec_whole.in_frame(), dec_split.in_frame());
            prop_assert_eq!(dec_whole.buffered(), dec_split.buffered());
            prop_assert!(dec_split.buffered() <= max);
            // Every input byte is accounted for, once.
            let tail = dec_whole.finish();
            prop_assert_eq!(&tail, &dec_split.finish());
            let accounted: usize = whole.iter().chain(tail.iter()).map(input_bytes).sum();
            prop_assert_eq!(accounted, wire.len());
            for e in &whole {
                match e {
                    FrameEvent::Frame(m) => {
                        prop_assert!(m.len() <= max);
                        prop_assert!(!m.contains(&START_BLOCK) && !m.contains(&END_BLOCK));
                    }
                    FrameEvent::TooLarge { prefix, total } => {
                        prop_assert!(*total > max);
                        prop_assert!(prefix.len() <= TOO_LARGE_PREFIX.min(max));
                    }
                    FrameEvent::Discarded(n) => prop_assert!(*n > 0),
                }
            }
        }
    }
}
