//! RTP and RTCP (RFC 3550), sans-I/O: packet parsing and writing, the sending state of a stream,
//! the negotiated payload-type map, receiver statistics and RTCP reports.
//!
//! Nothing here reads a clock: functions that need the time take `now`, a
//! [`std::time::Duration`] since the engine's epoch.

pub mod packet;
pub mod payload;
pub mod rtcp;
pub mod stats;

pub use packet::{
    looks_like_rtcp, write_rtp, ExtensionProfile, RtpExtension, RtpHeader, RtpPacket, RtpSender,
    SplitMix64, RTP_HEADER_LEN, RTP_VERSION,
};
pub use payload::{PayloadFormat, PayloadMap};
pub use rtcp::{
    NtpTime, ReportBlock, RtcpCompound, RtcpPacket, RtcpScheduler, RtcpWriter, SdesItem, SenderInfo,
};
pub use stats::{InterarrivalJitter, ReceiveOutcome, ReceiverStats, ResyncReason};
