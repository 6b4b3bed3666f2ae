//! RFC 4733 telephone-events: the 4-byte payload (§2.3), a receiver that turns a packet stream
//! into one begin and one end per event (§2.5.2), and a sender that produces the packet sequence
//! for queued events (§2.5.1).
//!
//! Durations and timestamps are in RTP clock units of the event's payload type (8000 Hz for
//! `telephone-event/8000`, 48000 for `telephone-event/48000`). Both state machines are sans-I/O:
//! the receiver takes `now` for its timeout, the sender the RTP timestamp of each packet tick.

use std::time::Duration;

use crate::error::{MediaError, Result};

/// The telephone-event payload (RFC 4733 §2.3, Figure 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TelephoneEvent {
    /// Event code (§3.2: 0–9, `*` 10, `#` 11, A–D 12–15, flash 16).
    pub event: u8,
    /// E bit: this packet ends the event.
    pub end: bool,
    /// Power level as 0..=63 meaning 0 to −63 dBm0 (larger is quieter).
    pub volume: u8,
    /// Duration so far, in RTP clock units from the event's timestamp.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Payload length in bytes.
    pub const LEN: usize = 4;

    /// Parses the first 4 bytes of `payload` (the reserved bit is ignored, §2.3).
    ///
    /// Errors with [`MediaError::Parse`] if `payload` is shorter than 4 bytes.
    pub fn parse(payload: &[u8]) -> Result<Self> {
        let [event, flags, hi, lo] = match payload.get(..4) {
            Some(&[a, b, c, d]) => [a, b, c, d],
            _ => {
                return Err(MediaError::Parse(format!(
                    "telephone-event payload of {} bytes (needs 4)",
                    payload.len()
                )))
            }
        };
        Ok(Self {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([hi, lo]),
        })
    }

    /// The 4-byte payload (reserved bit zero; volume masked to 6 bits).
    pub fn to_bytes(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }
}

/// Why the receiver ended an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// A packet with the E bit arrived.
    EndBit,
    /// A packet of a new event (new timestamp) arrived before the end.
    NewEvent,
    /// No packet for the event within the receiver's timeout.
    Timeout,
}

/// What [`EventReceiver`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceivedEvent {
    /// The first packet of an event arrived (whether or not it was the marker packet).
    Begin {
        /// Event code.
        event: u8,
        /// RTP timestamp of the event (of its first segment).
        timestamp: u32,
        /// Volume of the first packet seen (0..=63, −dBm0).
        volume: u8,
    },
    /// The event is over; reported exactly once per event.
    End {
        /// Event code.
        event: u8,
        /// As in [`ReceivedEvent::Begin`].
        timestamp: u32,
        /// Longest duration seen, in clock units, summed over segments of a long event.
        duration: u32,
        /// Volume of the last packet seen.
        volume: u8,
        /// How the end was determined.
        reason: EndReason,
    },
}

#[derive(Debug, Clone, Copy)]
struct Active {
    event: u8,
    timestamp: u32,
    seg_ts: u32,
    before_seg: u32,
    seg_duration: u16,
    volume: u8,
    last_seen: Duration,
}

impl Active {
    fn end(&self, reason: EndReason) -> ReceivedEvent {
        ReceivedEvent::End {
            event: self.event,
            timestamp: self.timestamp,
            duration: self.before_seg.saturating_add(u32::from(self.seg_duration)),
            volume: self.volume,
            reason,
        }
    }
}

/// `a` is after `b` in RTP timestamp serial arithmetic (RFC 3550 wrap-around).
fn ts_after(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000_0000
}

/// Receives telephone-event packets of one stream.
///
/// * One event per RTP timestamp: packets repeating a timestamp update the duration; once ended,
///   further packets with that timestamp (the redundant end packets, retransmissions) are ignored.
/// * An event begins on whichever of its packets arrives first, even if the marker packet is lost.
/// * A packet with a later timestamp starts a new event, ending the previous one if its end was
///   lost; packets older than the current event are late and ignored.
/// * Long events split into segments (§2.5.1.3: same event, next timestamp = previous + up to
///   0xFFFF, no marker) continue the same event.
/// * An event with no packet for `timeout` (default 500 ms, about ten missed updates at a
///   50 ms ptime) ends with [`EndReason::Timeout`]; call [`EventReceiver::poll`] regularly.
#[derive(Debug, Clone)]
pub struct EventReceiver {
    timeout: Duration,
    current: Option<Active>,
    /// Timestamp of the most recent event (ended or active), for late/duplicate detection.
    last_ts: Option<u32>,
}

impl Default for EventReceiver {
    fn default() -> Self {
        Self::new()
    }
}

impl EventReceiver {
    /// Default end-of-event timeout.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);

    /// A receiver with the default timeout.
    pub fn new() -> Self {
        Self::with_timeout(Self::DEFAULT_TIMEOUT)
    }

    /// A receiver that ends an event after `timeout` without packets.
    pub fn with_timeout(timeout: Duration) -> Self {
        Self {
            timeout,
            current: None,
            last_ts: None,
        }
    }

    /// Forgets the current event and the timestamps seen, without reporting an end (for an SSRC
    /// change or a timestamp jump the line has detected).
    pub fn reset(&mut self) {
        self.current = None;
        self.last_ts = None;
    }

    /// The event code being received, if any.
    pub fn active(&self) -> Option<u8> {
        self.current.map(|a| a.event)
    }

    /// Ends the current event if its last packet is older than the timeout.
    pub fn poll<F: FnMut(ReceivedEvent)>(&mut self, now: Duration, mut on_event: F) {
        if let Some(a) = self.current {
            if now.saturating_sub(a.last_seen) >= self.timeout {
                on_event(a.end(EndReason::Timeout));
                self.current = None;
            }
        }
    }

    /// Handles one telephone-event RTP packet: its `timestamp`, `marker` bit and `payload`.
    /// Calls `on_event` for each begin or end it causes (at most an end, a begin and an end).
    ///
    /// Errors with [`MediaError::Parse`] for a short payload (state unchanged).
    pub fn on_packet<F: FnMut(ReceivedEvent)>(
        &mut self,
        now: Duration,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
        mut on_event: F,
    ) -> Result<()> {
        let ev = TelephoneEvent::parse(payload)?;
        self.poll(now, &mut on_event);
        if let Some(mut a) = self.current {
            if timestamp == a.seg_ts {
                if ev.event != a.event {
                    return Ok(()); // one event per timestamp; ignore a contradicting packet
                }
                a.seg_duration = a.seg_duration.max(ev.duration);
                a.volume = ev.volume;
                a.last_seen = now;
                if ev.end {
                    on_event(a.end(EndReason::EndBit));
                    self.current = None;
                } else {
                    self.current = Some(a);
                }
                return Ok(());
            }
            let step = timestamp.wrapping_sub(a.seg_ts);
            if ev.event == a.event && !marker && (0xF000..=0xFFFF).contains(&step) {
                // Next segment of a long event.
                a.before_seg = a.before_seg.saturating_add(step);
                a.seg_ts = timestamp;
                a.seg_duration = ev.duration;
                a.volume = ev.volume;
                a.last_seen = now;
                self.last_ts = Some(timestamp);
                if ev.end {
                    on_event(a.end(EndReason::EndBit));
                    self.current = None;
                } else {
                    self.current = Some(a);
                }
                return Ok(());
            }
            if !ts_after(timestamp, a.seg_ts) {
                return Ok(()); // late packet of an earlier event
            }
            on_event(a.end(EndReason::NewEvent));
            self.current = None;
        }
        if let Some(last) = self.last_ts {
            if !ts_after(timestamp, last) {
                return Ok(()); // end retransmission or a late packet of an ended event
            }
        }
        self.last_ts = Some(timestamp);
        on_event(ReceivedEvent::Begin {
            event: ev.event,
            timestamp,
            volume: ev.volume,
        });
        let a = Active {
            event: ev.event,
            timestamp,
            seg_ts: timestamp,
            before_seg: 0,
            seg_duration: ev.duration,
            volume: ev.volume,
            last_seen: now,
        };
        if ev.end {
            on_event(a.end(EndReason::EndBit));
        } else {
            self.current = Some(a);
        }
        Ok(())
    }
}

/// Sender timing and volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderSettings {
    /// RTP clock rate of the telephone-event payload type (8000 or 48000 usually).
    pub clock_rate: u32,
    /// Packet interval in ms (the stream's ptime): one update packet per tick.
    pub ptime_ms: u32,
    /// Default event duration in ms (default 100).
    pub duration_ms: u32,
    /// Minimum silence between the end of one event and the start of the next, ms (default 50).
    pub gap_ms: u32,
    /// Volume field, 0..=63 (−dBm0; default 10).
    pub volume: u8,
}

impl Default for SenderSettings {
    fn default() -> Self {
        Self {
            clock_rate: 8000,
            ptime_ms: 20,
            duration_ms: 100,
            gap_ms: 50,
            volume: 10,
        }
    }
}

/// One packet for the line to send in place of audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    /// RTP marker bit (set on the first packet of an event only).
    pub marker: bool,
    /// RTP timestamp: the event's (segment's) onset, the same for all its packets.
    pub timestamp: u32,
    /// The payload fields.
    pub event: TelephoneEvent,
}

impl EventPacket {
    /// The 4-byte RTP payload.
    pub fn payload(&self) -> [u8; 4] {
        self.event.to_bytes()
    }
}

/// Queue capacity of [`EventSender`].
pub const SENDER_QUEUE: usize = 32;

#[derive(Debug, Clone, Copy)]
enum SendState {
    Idle,
    Active {
        event: u8,
        start: u32,
        seg_ts: u32,
        total: u32,
        first: bool,
    },
    Ending {
        packet: EventPacket,
        left: u8,
    },
}

/// Produces RFC 4733 packets for queued events.
///
/// Call [`EventSender::next_packet`] once per packet tick (every ptime) with the RTP timestamp
/// the audio packet of that tick would carry; when it returns a packet, send it instead of audio
/// (same SSRC and sequence numbering). Per event: a start packet with the marker bit, an update
/// per tick with the duration growing at the same timestamp, then the end packet three times
/// (§2.5.1.4). An event longer than 0xFFFF units is split into segments (§2.5.1.3). Events never
/// overlap: the next starts only after the previous one's three end packets and `gap_ms` of
/// audio since its end.
#[derive(Debug, Clone)]
pub struct EventSender {
    settings: SenderSettings,
    ptime: u32,
    gap: u32,
    queue: [(u8, u32); SENDER_QUEUE],
    head: usize,
    len: usize,
    state: SendState,
    gap_until: Option<u32>,
}

impl EventSender {
    /// A sender with `settings`.
    ///
    /// Errors with [`MediaError::InvalidArgument`] for a clock rate under 1000 Hz, a zero ptime, ptime over
    /// 200 ms, or volume over 63.
    pub fn new(settings: &SenderSettings) -> Result<Self> {
        if settings.clock_rate < 1000
            || settings.clock_rate > 192_000
            || settings.ptime_ms == 0
            || settings.ptime_ms > 200
            || settings.volume > 63
            || settings.gap_ms > 10_000
        {
            return Err(MediaError::invalid(format!(
                "telephone-event sender settings out of range: {settings:?}"
            )));
        }
        Ok(Self {
            settings: *settings,
            ptime: settings.clock_rate / 1000 * settings.ptime_ms,
            gap: settings.clock_rate / 1000 * settings.gap_ms,
            queue: [(0, 0); SENDER_QUEUE],
            head: 0,
            len: 0,
            state: SendState::Idle,
            gap_until: None,
        })
    }

    /// Queues `event` (0..=16) for the default duration.
    pub fn queue(&mut self, event: u8) -> Result<()> {
        self.queue_with_duration(event, self.settings.duration_ms)
    }

    /// Queues `event` (0..=16) for `duration_ms` (40..=60,000 ms; 0 allowed for flash).
    pub fn queue_with_duration(&mut self, event: u8, duration_ms: u32) -> Result<()> {
        if event > 16 {
            return Err(MediaError::invalid(format!(
                "telephone-event {event} is not 0..=16"
            )));
        }
        if duration_ms > 60_000 || (duration_ms < 40 && event != 16) {
            return Err(MediaError::invalid(format!(
                "telephone-event duration {duration_ms} ms is not 40..=60000"
            )));
        }
        if self.len == SENDER_QUEUE {
            return Err(MediaError::invalid("telephone-event queue is full"));
        }
        let units = (u64::from(self.settings.clock_rate) * u64::from(duration_ms) / 1000) as u32;
        self.queue[(self.head + self.len) % SENDER_QUEUE] = (event, units.max(self.ptime));
        self.len += 1;
        Ok(())
    }

    /// Drops the queued events; an event already being sent still completes with its end packets.
    pub fn clear_queue(&mut self) {
        self.len = 0;
    }

    /// Events waiting, not counting the one being sent.
    pub fn pending(&self) -> usize {
        self.len
    }

    /// Whether an event is being sent (including its end packets).
    pub fn is_active(&self) -> bool {
        !matches!(self.state, SendState::Idle)
    }

    /// The packet to send at the tick whose audio timestamp is `timestamp`, or `None` to send
    /// audio as usual.
    pub fn next_packet(&mut self, timestamp: u32) -> Option<EventPacket> {
        if let SendState::Idle = self.state {
            if self.len == 0 {
                return None;
            }
            if let Some(until) = self.gap_until {
                if ts_after(until, timestamp) {
                    return None;
                }
            }
            let (event, total) = self.queue[self.head];
            self.head = (self.head + 1) % SENDER_QUEUE;
            self.len -= 1;
            self.state = SendState::Active {
                event,
                start: timestamp,
                seg_ts: timestamp,
                total,
                first: true,
            };
        }
        match self.state {
            SendState::Idle => None,
            SendState::Ending { packet, left } => {
                self.state = if left <= 1 {
                    SendState::Idle
                } else {
                    SendState::Ending {
                        packet,
                        left: left - 1,
                    }
                };
                Some(packet)
            }
            SendState::Active {
                event,
                start,
                seg_ts,
                total,
                first,
            } => {
                let elapsed = timestamp
                    .wrapping_sub(start)
                    .saturating_add(self.ptime)
                    .min(total);
                let seg_start = seg_ts.wrapping_sub(start);
                let seg_elapsed = elapsed - seg_start.min(elapsed);
                let mut packet = EventPacket {
                    marker: first,
                    timestamp: seg_ts,
                    event: TelephoneEvent {
                        event,
                        end: false,
                        volume: self.settings.volume,
                        duration: seg_elapsed.min(0xFFFF) as u16,
                    },
                };
                if seg_elapsed >= 0xFFFF && elapsed < total {
                    // Close this segment at 0xFFFF; the next tick opens the next one.
                    packet.event.duration = 0xFFFF;
                    self.state = SendState::Active {
                        event,
                        start,
                        seg_ts: seg_ts.wrapping_add(0xFFFF),
                        total,
                        first: false,
                    };
                } else if elapsed >= total {
                    packet.event.end = true;
                    self.gap_until = Some(start.wrapping_add(total).wrapping_add(self.gap));
                    self.state = SendState::Ending {
                        packet: EventPacket {
                            marker: false,
                            ..packet
                        },
                        left: 2,
                    };
                } else {
                    self.state = SendState::Active {
                        event,
                        start,
                        seg_ts,
                        total,
                        first: false,
                    };
                }
                Some(packet)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn payload_round_trip_and_errors() {
        let e = TelephoneEvent {
            event: 11,
            end: true,
            volume: 10,
            duration: 1600,
        };
        assert_eq!(e.to_bytes(), [11, 0x8A, 0x06, 0x40]);
        assert_eq!(TelephoneEvent::parse(&e.to_bytes()).unwrap(), e);
        // Reserved bit ignored, trailing bytes ignored.
        let p = TelephoneEvent::parse(&[5, 0x40 | 0x3F, 0xFF, 0xFF, 9]).unwrap();
        assert_eq!(
            (p.event, p.end, p.volume, p.duration),
            (5, false, 63, 0xFFFF)
        );
        for bad in [&[][..], &[1], &[1, 2, 3]] {
            assert!(matches!(
                TelephoneEvent::parse(bad),
                Err(MediaError::Parse(_))
            ));
        }
        for v in 0..=255u8 {
            let e = TelephoneEvent::parse(&[v, v, v, v]).unwrap();
            assert_eq!(TelephoneEvent::parse(&e.to_bytes()).unwrap(), e);
        }
    }

    /// Collects receiver output for a list of (ms, ts, marker, event, end, duration).
    fn receive(packets: &[(u64, u32, bool, u8, bool, u16)], end_at: u64) -> Vec<ReceivedEvent> {
        let mut rx = EventReceiver::new();
        let mut out = Vec::new();
        for &(t, ts, m, ev, end, dur) in packets {
            let p = TelephoneEvent {
                event: ev,
                end,
                volume: 10,
                duration: dur,
            };
            rx.on_packet(ms(t), ts, m, &p.to_bytes(), |e| out.push(e))
                .unwrap();
        }
        rx.poll(ms(end_at), |e| out.push(e));
        out
    }

    fn ends(events: &[ReceivedEvent]) -> Vec<(u8, u32, EndReason)> {
        events
            .iter()
            .filter_map(|e| match *e {
                ReceivedEvent::End {
                    event,
                    duration,
                    reason,
                    ..
                } => Some((event, duration, reason)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn normal_event_with_redundant_ends_counts_once() {
        let ev = receive(
            &[
                (0, 1000, true, 5, false, 160),
                (20, 1000, false, 5, false, 320),
                (40, 1000, false, 5, false, 480),
                (60, 1000, false, 5, true, 640),
                (80, 1000, false, 5, true, 640),
                (100, 1000, false, 5, true, 640),
                (130, 1000, false, 5, true, 640), // a late retransmission
            ],
            2000,
        );
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert!(matches!(
            ev[0],
            ReceivedEvent::Begin {
                event: 5,
                timestamp: 1000,
                volume: 10
            }
        ));
        assert_eq!(ends(&ev), vec![(5, 640, EndReason::EndBit)]);
    }

    #[test]
    fn lost_start_and_only_end_packets() {
        let ev = receive(
            &[
                (40, 1000, false, 7, false, 480),
                (60, 1000, false, 7, true, 640),
            ],
            2000,
        );
        assert_eq!(ev.len(), 2);
        assert_eq!(ends(&ev), vec![(7, 640, EndReason::EndBit)]);
        let ev = receive(
            &[
                (60, 1000, false, 7, true, 640),
                (80, 1000, false, 7, true, 640),
            ],
            2000,
        );
        assert_eq!(ends(&ev), vec![(7, 640, EndReason::EndBit)]);
        assert_eq!(ev.len(), 2);
    }

    #[test]
    fn new_timestamp_starts_new_event_and_late_packets_are_ignored() {
        let ev = receive(
            &[
                (0, 1000, true, 1, false, 160),
                (20, 1000, false, 1, false, 320),
                // End of digit 1 lost; digit 2 begins.
                (200, 3000, true, 2, false, 160),
                (210, 1000, false, 1, true, 400), // late end of digit 1: ignored
                (220, 3000, false, 2, true, 320),
                // Same digit again at a new timestamp is a new event.
                (400, 6000, true, 2, false, 160),
                (420, 6000, false, 2, true, 320),
            ],
            2000,
        );
        assert_eq!(
            ends(&ev),
            vec![
                (1, 320, EndReason::NewEvent),
                (2, 320, EndReason::EndBit),
                (2, 320, EndReason::EndBit)
            ]
        );
        assert_eq!(ev.len(), 6);
    }

    #[test]
    fn missing_end_times_out() {
        let mut rx = EventReceiver::with_timeout(ms(300));
        let mut out = Vec::new();
        let p = TelephoneEvent {
            event: 9,
            end: false,
            volume: 20,
            duration: 160,
        };
        rx.on_packet(ms(0), 50, true, &p.to_bytes(), |e| out.push(e))
            .unwrap();
        rx.poll(ms(299), |e| out.push(e));
        assert_eq!(out.len(), 1);
        rx.poll(ms(300), |e| out.push(e));
        assert_eq!(ends(&out), vec![(9, 160, EndReason::Timeout)]);
        // A straggler of the timed-out event does not restart it.
        rx.on_packet(ms(310), 50, false, &p.to_bytes(), |e| out.push(e))
            .unwrap();
        assert_eq!(out.len(), 2);
        assert!(rx
            .on_packet(ms(320), 60, false, &[1, 2], |e| out.push(e))
            .is_err());
    }

    #[test]
    fn timestamp_wrap_around() {
        let ev = receive(
            &[
                (0, u32::MAX - 100, true, 3, false, 160),
                (20, u32::MAX - 100, false, 3, true, 320),
                (200, 500, true, 4, false, 160),
                (220, 500, false, 4, true, 320),
            ],
            2000,
        );
        assert_eq!(
            ends(&ev),
            vec![(3, 320, EndReason::EndBit), (4, 320, EndReason::EndBit)]
        );
    }

    fn drive(tx: &mut EventSender, ticks: usize, ptime: u32) -> Vec<(u32, Option<EventPacket>)> {
        let mut ts = 0u32;
        let mut out = Vec::new();
        for _ in 0..ticks {
            out.push((ts, tx.next_packet(ts)));
            ts = ts.wrapping_add(ptime);
        }
        out
    }

    #[test]
    fn sender_sequence_and_gap() {
        let mut tx = EventSender::new(&SenderSettings::default()).unwrap();
        tx.queue(1).unwrap();
        tx.queue(1).unwrap();
        let seq = drive(&mut tx, 30, 160);
        let pk: Vec<EventPacket> = seq.iter().filter_map(|s| s.1).collect();
        // 100 ms at 20 ms ptime: 5 packets (last one the first end), 2 more ends: 7 per event.
        assert_eq!(pk.len(), 14);
        let first = &pk[..7];
        assert!(first[0].marker && first[1..].iter().all(|p| !p.marker));
        assert!(first.iter().all(|p| p.timestamp == 0));
        let durs: Vec<u16> = first.iter().map(|p| p.event.duration).collect();
        assert_eq!(durs, vec![160, 320, 480, 640, 800, 800, 800]);
        let end_bits: Vec<bool> = first.iter().map(|p| p.event.end).collect();
        assert_eq!(end_bits, vec![false, false, false, false, true, true, true]);
        // The second event starts after ≥ 50 ms of audio following the first's end at ts 800.
        let second_start = seq
            .iter()
            .position(|s| s.1.is_some_and(|p| p.timestamp != 0))
            .unwrap();
        let ts2 = seq[second_start].0;
        assert!(ts2 >= 800 + 400, "second event at {ts2}");
        assert!(seq[7].1.is_none(), "audio between events");
        assert!(pk[7].marker);
        // Receiver sees exactly two digits of 800 units.
        let mut rx = EventReceiver::new();
        let mut got = Vec::new();
        for (i, p) in pk.iter().enumerate() {
            rx.on_packet(
                ms(i as u64 * 20),
                p.timestamp,
                p.marker,
                &p.payload(),
                |e| got.push(e),
            )
            .unwrap();
        }
        assert_eq!(
            ends(&got),
            vec![(1, 800, EndReason::EndBit), (1, 800, EndReason::EndBit)]
        );
    }

    #[test]
    fn long_event_is_segmented_and_reassembled() {
        let mut tx = EventSender::new(&SenderSettings::default()).unwrap();
        tx.queue_with_duration(0, 10_000).unwrap(); // 80,000 units > 0xFFFF
        let seq = drive(&mut tx, 520, 160);
        let pk: Vec<EventPacket> = seq.iter().filter_map(|s| s.1).collect();
        let timestamps: Vec<u32> = pk.iter().map(|p| p.timestamp).collect();
        assert!(timestamps.contains(&0) && timestamps.contains(&0xFFFF));
        assert!(pk
            .iter()
            .any(|p| p.timestamp == 0 && p.event.duration == 0xFFFF && !p.event.end));
        let last = pk[pk.len() - 1];
        assert!(last.event.end && last.timestamp == 0xFFFF);
        assert_eq!(u32::from(last.event.duration), 80_000 - 0xFFFF);
        assert_eq!(pk.iter().filter(|p| p.marker).count(), 1);
        let mut rx = EventReceiver::new();
        let mut got = Vec::new();
        for (i, p) in pk.iter().enumerate() {
            rx.on_packet(
                ms(i as u64 * 20),
                p.timestamp,
                p.marker,
                &p.payload(),
                |e| got.push(e),
            )
            .unwrap();
        }
        assert_eq!(ends(&got), vec![(0, 80_000, EndReason::EndBit)]);
    }

    #[test]
    fn sender_rejects_bad_input() {
        assert!(EventSender::new(&SenderSettings {
            ptime_ms: 0,
            ..Default::default()
        })
        .is_err());
        assert!(EventSender::new(&SenderSettings {
            volume: 64,
            ..Default::default()
        })
        .is_err());
        let mut tx = EventSender::new(&SenderSettings::default()).unwrap();
        assert!(tx.queue(17).is_err());
        assert!(tx.queue_with_duration(1, 10).is_err());
        for _ in 0..SENDER_QUEUE {
            tx.queue(1).unwrap();
        }
        assert!(tx.queue(1).is_err());
        assert_eq!(tx.pending(), SENDER_QUEUE);
        assert!(tx.next_packet(0).is_some_and(|p| p.marker));
        tx.clear_queue();
        assert_eq!(tx.pending(), 0);
        let rest: Vec<EventPacket> = (1..20).filter_map(|i| tx.next_packet(i * 160)).collect();
        assert_eq!(rest.iter().filter(|p| p.event.end).count(), 3);
        assert!(!tx.is_active());
    }

    #[test]
    fn receiver_survives_arbitrary_packets() {
        let mut rx = EventReceiver::new();
        let mut rng = 0xDEAD_BEEFu32;
        let mut begins = 0i64;
        let mut ends_n = 0i64;
        for i in 0..20_000u64 {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            let payload = rng.to_be_bytes();
            let ts = (rng >> 3) % 64 * 1000;
            rx.on_packet(ms(i * 7), ts, rng & 1 == 1, &payload, |e| match e {
                ReceivedEvent::Begin { .. } => begins += 1,
                ReceivedEvent::End { .. } => ends_n += 1,
            })
            .unwrap();
            // Begins and ends alternate: never two ends for one begin.
            assert!(begins - ends_n == 0 || begins - ends_n == 1);
        }
    }
}
