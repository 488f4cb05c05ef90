//! Codec throughput in prefixes per second (criterion `Throughput::Elements`).
//!
//! (a) one UPDATE with 500 IPv4 /24 prefixes and typical attributes;
//! (b) a stream of 1M IPv4 /24 prefixes in packed UPDATEs;
//! (c) the same with 1M IPv6 /48 prefixes in MP_REACH_NLRI.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use tabby_bgp::attr::{AsPath, Community, LocalPref, Med, NextHop, Origin};
use tabby_bgp::codec::{CodecCtx, UpdatePacker, decode_message, encode_message, frame_len};
use tabby_bgp::message::Update;
use tabby_bgp::{Asn, Family, Message, Nlri, PathAttributes};

fn attrs() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: AsPath::from_sequence([Asn(65001), Asn(65002), Asn(4_200_000_001)]),
        next_hop: Some(Ipv4Addr::new(198, 18, 0, 1)),
        med: Some(Med::new(10)),
        local_pref: Some(LocalPref::new(100)),
        communities: vec![Community::new(65001, 1), Community::new(65001, 2)],
        ..PathAttributes::default()
    }
}

fn ctx() -> CodecCtx {
    CodecCtx {
        four_octet_as: true,
        ..CodecCtx::default()
    }
}

fn v4(n: usize) -> Vec<Nlri> {
    (0..n)
        .map(|i| {
            let a = u32::from(Ipv4Addr::new(100, 64, 0, 0)).wrapping_add((i as u32) << 8);
            Nlri::new(IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), 24).unwrap()))
        })
        .collect()
}

fn v6(n: usize) -> Vec<Nlri> {
    let base = u128::from("2001:db8:1000::".parse::<Ipv6Addr>().unwrap());
    (0..n)
        .map(|i| {
            let a = base.wrapping_add((i as u128) << 80);
            Nlri::new(IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), 48).unwrap()))
        })
        .collect()
}

/// Decodes every message of a packed stream; returns the prefix count.
fn decode_stream(mut buf: &[u8], ctx: &CodecCtx) -> usize {
    let mut n = 0;
    while let Ok(Some(len)) = frame_len(buf, ctx.max_message_len) {
        let (m, rest) = buf.split_at(len);
        if let Ok(Message::Update(u)) = decode_message(m, ctx) {
            n += u.nlri.len() + u.mp_reach.map_or(0, |r| r.nlri.len());
        }
        buf = rest;
    }
    n
}

fn single_update(c: &mut Criterion) {
    let ctx = ctx();
    let u = Message::Update(Update {
        attributes: attrs(),
        nlri: v4(500),
        ..Update::default()
    });
    let mut wire = BytesMut::new();
    encode_message(&u, &ctx, &mut wire).unwrap();
    let mut g = c.benchmark_group("a_update_500_ipv4");
    g.throughput(Throughput::Elements(500));
    g.bench_function("decode", |b| {
        b.iter(|| decode_message(black_box(&wire), &ctx).unwrap())
    });
    let mut out = BytesMut::with_capacity(4096);
    g.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            encode_message(black_box(&u), &ctx, &mut out).unwrap();
        })
    });
    g.finish();
}

fn stream(c: &mut Criterion, name: &str, family: Family, nlri: Vec<Nlri>, nh: Option<NextHop>) {
    let ctx = ctx();
    let packer = UpdatePacker::new(family, &attrs(), nh, &ctx).unwrap();
    let mut wire = BytesMut::new();
    packer.pack(&nlri, &mut wire).unwrap();
    assert_eq!(decode_stream(&wire, &ctx), nlri.len());
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(nlri.len() as u64));
    g.sample_size(10);
    g.bench_function("decode", |b| {
        b.iter(|| decode_stream(black_box(&wire), &ctx))
    });
    let mut out = BytesMut::with_capacity(wire.len());
    g.bench_function("encode", |b| {
        b.iter(|| {
            out.clear();
            packer.pack(black_box(&nlri), &mut out).unwrap()
        })
    });
    g.finish();
}

fn packed_streams(c: &mut Criterion) {
    stream(
        c,
        "b_stream_1m_ipv4",
        Family::IPV4_UNICAST,
        v4(1_000_000),
        None,
    );
    let nh = NextHop::new(IpAddr::V6("2001:db8::1".parse().unwrap()));
    stream(
        c,
        "c_stream_1m_ipv6",
        Family::IPV6_UNICAST,
        v6(1_000_000),
        Some(nh),
    );
}

criterion_group!(benches, single_update, packed_streams);
criterion_main!(benches);
