//! The byte path of a transport wrapper, delegated to its `inner` stream in one place.

/// Implements `AsyncRead` and `AsyncWrite` for `$ty` by forwarding every call to its `inner`
/// field, which must be `Unpin`. Vectored writes are forwarded too: dropping them would split
/// Pingora's head-and-body writes into separate syscalls.
macro_rules! delegate_async_io {
    ($ty:ty) => {
        impl ::tokio::io::AsyncRead for $ty {
            fn poll_read(
                mut self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &mut ::tokio::io::ReadBuf<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                ::std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
            }
        }

        impl ::tokio::io::AsyncWrite for $ty {
            fn poll_write(
                mut self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &[u8],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                ::std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
            }

            fn poll_flush(
                mut self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                ::std::pin::Pin::new(&mut self.inner).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                ::std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
            }

            fn poll_write_vectored(
                mut self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                ::std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }
        }
    };
}

pub(crate) use delegate_async_io;

/// Implements Pingora's per-connection facts (`UniqueID`, `Ssl`, and the timing, proxy and
/// socket digests) for a wrapper `$ty` by asking its `inner` stream: a wrapper that changes how
/// bytes move must not change what the connection says about itself (its fd is the pool's key
/// check, its digests feed logs and `Session` APIs). `inner` is a Pingora `Stream`; the calls
/// name their traits, so the wrapper's module need not import them.
macro_rules! delegate_connection_facts {
    ($ty:ty) => {
        impl ::pingora_core::protocols::UniqueID for $ty {
            fn id(&self) -> ::pingora_core::protocols::UniqueIDType {
                ::pingora_core::protocols::UniqueID::id(&*self.inner)
            }
        }

        impl ::pingora_core::protocols::Ssl for $ty {
            fn get_ssl(&self) -> Option<&::pingora_core::protocols::tls::TlsRef> {
                ::pingora_core::protocols::Ssl::get_ssl(&*self.inner)
            }

            fn get_ssl_digest(
                &self,
            ) -> Option<::std::sync::Arc<::pingora_core::protocols::tls::SslDigest>> {
                ::pingora_core::protocols::Ssl::get_ssl_digest(&*self.inner)
            }

            fn selected_alpn_proto(&self) -> Option<::pingora_core::protocols::ALPN> {
                ::pingora_core::protocols::Ssl::selected_alpn_proto(&*self.inner)
            }
        }

        impl ::pingora_core::protocols::GetTimingDigest for $ty {
            fn get_timing_digest(&self) -> Vec<Option<::pingora_core::protocols::TimingDigest>> {
                ::pingora_core::protocols::GetTimingDigest::get_timing_digest(&*self.inner)
            }
        }

        impl ::pingora_core::protocols::GetProxyDigest for $ty {
            fn get_proxy_digest(
                &self,
            ) -> Option<::std::sync::Arc<::pingora_core::protocols::raw_connect::ProxyDigest>> {
                ::pingora_core::protocols::GetProxyDigest::get_proxy_digest(&*self.inner)
            }
        }

        impl ::pingora_core::protocols::GetSocketDigest for $ty {
            fn get_socket_digest(
                &self,
            ) -> Option<::std::sync::Arc<::pingora_core::protocols::SocketDigest>> {
                ::pingora_core::protocols::GetSocketDigest::get_socket_digest(&*self.inner)
            }

            fn set_socket_digest(
                &mut self,
                socket_digest: ::pingora_core::protocols::SocketDigest,
            ) {
                ::pingora_core::protocols::GetSocketDigest::set_socket_digest(
                    &mut *self.inner,
                    socket_digest,
                );
            }
        }
    };
}

pub(crate) use delegate_connection_facts;
