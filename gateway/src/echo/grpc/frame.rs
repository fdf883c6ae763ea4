//! gRPC's length-prefixed message framing (1 byte compressed flag, 4 bytes big-endian length, message),
//! shared by the echo server and the conformance client.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Larger messages are refused rather than buffered (gRPC's default receive limit).
pub const MAX_MESSAGE: usize = 4 * 1024 * 1024;

const PREFIX: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("compressed gRPC messages are not supported")]
    Compressed,
    #[error("gRPC message of {0} bytes exceeds the {MAX_MESSAGE} byte limit")]
    TooLarge(usize),
    #[error("the stream ended inside a gRPC message")]
    Truncated,
}

/// One message with its prefix, ready for a DATA frame.
pub fn encode(message: &impl prost::Message) -> Bytes {
    let len = message.encoded_len();
    let mut buf = BytesMut::with_capacity(PREFIX + len);
    buf.put_u8(0);
    // encoded_len of anything we build is far below 4 GiB.
    buf.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    message.encode_raw(&mut buf);
    buf.freeze()
}

/// Splits received DATA into messages, whatever the frame boundaries.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: BytesMut,
}

impl Decoder {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete message, `None` until one is whole.
    pub fn next_message(&mut self) -> Result<Option<Bytes>, FrameError> {
        if self.buf.len() < PREFIX {
            return Ok(None);
        }
        if self.buf[0] != 0 {
            return Err(FrameError::Compressed);
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_MESSAGE {
            return Err(FrameError::TooLarge(len));
        }
        if self.buf.len() < PREFIX + len {
            return Ok(None);
        }
        self.buf.advance(PREFIX);
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    /// At end of stream: an error when a message was cut off.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Truncated)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::echo::grpc::proto::EchoRequest;

    #[test]
    fn messages_split_across_chunks_decode_in_order() {
        let mut wire = encode(&EchoRequest {
            payload: b"one".to_vec(),
        })
        .to_vec();
        wire.extend_from_slice(&encode(&EchoRequest::default()));
        let mut decoder = Decoder::default();
        let mut messages = Vec::new();
        for byte in wire {
            decoder.push(&[byte]);
            while let Some(message) = decoder.next_message().unwrap() {
                messages.push(message);
            }
        }
        assert_eq!(messages.len(), 2);
        assert_eq!(&messages[0][..], b"\x0a\x03one");
        assert!(messages[1].is_empty());
        assert_eq!(decoder.finish(), Ok(()));
    }

    #[test]
    fn compressed_oversized_and_truncated_messages_are_errors() {
        let mut decoder = Decoder::default();
        decoder.push(&[1, 0, 0, 0, 0]);
        assert_eq!(decoder.next_message(), Err(FrameError::Compressed));
        let mut decoder = Decoder::default();
        decoder.push(&[0, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            decoder.next_message(),
            Err(FrameError::TooLarge(_))
        ));
        let mut decoder = Decoder::default();
        decoder.push(&[0, 0, 0, 0, 3, b'a']);
        assert_eq!(decoder.next_message(), Ok(None));
        assert_eq!(decoder.finish(), Err(FrameError::Truncated));
    }
}
