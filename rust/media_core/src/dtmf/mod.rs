//! DTMF: in-band detection and generation, and RFC 4733 telephone-events.
