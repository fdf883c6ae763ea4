// Copyright 2026 Cloudflare, Inc.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
// http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

use bytes::{Bytes, BytesMut};

/// A buffer with size limit. When the total amount of data written to the buffer is below the limit
/// all the data will be held in the buffer. Otherwise, the buffer will report to be truncated.
pub struct FixedBuffer {
    buffer: BytesMut,
    /// The first write, held by reference when it came through [`Self::write_owned_to_buffer`]:
    /// a body that arrives in one read is then never copied. Only set while `buffer` is empty.
    first: Option<Bytes>,
    capacity: usize,
    truncated: bool,
}

impl FixedBuffer {
    pub fn new(capacity: usize) -> Self {
        FixedBuffer {
            buffer: BytesMut::new(),
            first: None,
            capacity,
            truncated: false,
        }
    }

    fn len(&self) -> usize {
        self.first.as_ref().map_or(0, Bytes::len) + self.buffer.len()
    }

    // TODO: maybe store a Vec of Bytes for zero-copy
    pub fn write_to_buffer(&mut self, data: &Bytes) {
        if self.truncated {
            return;
        }

        if self.len() + data.len() <= self.capacity {
            if let Some(first) = self.first.take() {
                self.buffer.reserve(first.len() + data.len());
                self.buffer.extend_from_slice(&first);
            }
            self.buffer.extend_from_slice(data);
        } else {
            // Buffered data is no longer usable for a retry, so release its allocation.
            self.buffer = BytesMut::new();
            self.first = None;
            self.truncated = true;
        }
    }

    /// Like [`Self::write_to_buffer`], for a chunk that (nearly) fills its allocation, such as
    /// one copied out of a read buffer or a read buffer it filled: the first such write is kept
    /// by reference, not copied. A small slice of a larger buffer must go through
    /// `write_to_buffer`, or holding it would keep the whole buffer alive.
    pub fn write_owned_to_buffer(&mut self, data: &Bytes) {
        if self.truncated {
            return;
        }
        if self.first.is_none() && self.buffer.is_empty() && data.len() <= self.capacity {
            if !data.is_empty() {
                self.first = Some(data.clone());
            }
            return;
        }
        self.write_to_buffer(data);
    }

    pub fn clear(&mut self) {
        self.truncated = false;
        self.first = None;
        self.buffer.clear();
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }
    pub fn get_buffer(&self) -> Option<Bytes> {
        // TODO: return None if truncated?
        if let Some(first) = self.first.as_ref() {
            Some(first.clone())
        } else if !self.buffer.is_empty() {
            Some(self.buffer.clone().freeze())
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_storage_when_truncated() {
        let mut buffer = FixedBuffer::new(4);
        buffer.write_to_buffer(&Bytes::from_static(b"1234"));
        assert!(buffer.buffer.capacity() >= 4);

        buffer.write_to_buffer(&Bytes::from_static(b"5"));

        assert!(buffer.is_truncated());
        assert_eq!(buffer.buffer.capacity(), 0);
        assert!(buffer.get_buffer().is_none());
    }

    #[test]
    fn keeps_a_single_owned_chunk_without_copying() {
        let mut buffer = FixedBuffer::new(8);
        let body = Bytes::from(b"12345678".to_vec());
        buffer.write_owned_to_buffer(&body);

        let held = buffer.get_buffer().unwrap();
        assert_eq!(held, body);
        assert_eq!(held.as_ptr(), body.as_ptr());
        assert!(!buffer.is_empty());
    }

    #[test]
    fn later_owned_chunks_are_appended_in_order() {
        let mut buffer = FixedBuffer::new(8);
        buffer.write_owned_to_buffer(&Bytes::from_static(b"123"));
        buffer.write_owned_to_buffer(&Bytes::from_static(b"45"));
        buffer.write_to_buffer(&Bytes::from_static(b"678"));

        assert_eq!(buffer.get_buffer().unwrap(), Bytes::from_static(b"12345678"));
        assert!(!buffer.is_truncated());
    }

    #[test]
    fn an_owned_chunk_counts_against_the_limit() {
        let mut buffer = FixedBuffer::new(4);
        buffer.write_owned_to_buffer(&Bytes::from_static(b"1234"));
        buffer.write_owned_to_buffer(&Bytes::from_static(b"5"));

        assert!(buffer.is_truncated());
        assert!(buffer.get_buffer().is_none());

        let mut oversized = FixedBuffer::new(4);
        oversized.write_owned_to_buffer(&Bytes::from_static(b"12345"));
        assert!(oversized.is_truncated());
        assert!(oversized.get_buffer().is_none());
    }

    #[test]
    fn clear_forgets_an_owned_chunk() {
        let mut buffer = FixedBuffer::new(4);
        buffer.write_owned_to_buffer(&Bytes::from_static(b"12"));
        buffer.clear();

        assert!(buffer.is_empty());
        assert!(buffer.get_buffer().is_none());
        buffer.write_owned_to_buffer(&Bytes::from_static(b"34"));
        assert_eq!(buffer.get_buffer().unwrap(), Bytes::from_static(b"34"));
    }
}
