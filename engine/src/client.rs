//! A small blocking client for a core's TCP port: used by tools, tests and benches. (The
//! gateway has its own pooled async client.)

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::BytesMut;
use proto::{decode_frame, encode_request, Message, Request, Response};

pub struct BlockingClient {
    stream: TcpStream,
    inbuf: BytesMut,
    next_id: u64,
    layout_version: u64,
}

impl BlockingClient {
    pub fn connect(addr: SocketAddr, layout_version: u64) -> std::io::Result<BlockingClient> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(BlockingClient {
            stream,
            inbuf: BytesMut::new(),
            next_id: 1,
            layout_version,
        })
    }

    /// Waits at most `timeout` for each read of an answer (30 s by default).
    pub fn set_read_timeout(&self, timeout: Duration) -> std::io::Result<()> {
        self.stream.set_read_timeout(Some(timeout))
    }

    pub fn call(&mut self, request: &Request) -> std::io::Result<Response> {
        let id = self.next_id;
        self.next_id += 1;
        let mut out = BytesMut::new();
        encode_request(id, self.layout_version, request, &mut out);
        self.stream.write_all(&out)?;
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match decode_frame(&mut self.inbuf) {
                Ok(Some(f)) => {
                    return match f.message {
                        Message::Response(r) if f.request_id == id || f.request_id == 0 => Ok(r),
                        _ => Err(std::io::Error::other("unexpected frame")),
                    }
                }
                Ok(None) => {}
                Err(e) => return Err(std::io::Error::other(e)),
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.inbuf.extend_from_slice(&chunk[..n]);
        }
    }
}
