//! Memcached ASCII protocol (filled in below).
