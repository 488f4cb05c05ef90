//! Replays the fuzz seed corpus (`../fuzz/seeds/<target>/`) and every crash
//! input the fuzzers found (`tests/fuzz_regressions/<target>-*`) through the
//! same checks the fuzz targets make, so a fixed crash stays fixed without
//! cargo-fuzz.

use std::collections::BTreeSet;
use std::path::Path;

use bytes::BytesMut;
use tabby_bgp::codec::{
    CodecCtx, decode_attributes, decode_capabilities, decode_message, decode_notification,
    decode_open, decode_prefixes, decode_update, encode_capability, encode_message, frame_len,
    parse_as_path, put_nlri,
};
use tabby_bgp::{Afi, Family, Message};

/// Same context selection as fuzz/src/lib.rs.
fn ctx_and_data(data: &[u8]) -> (CodecCtx, &[u8]) {
    let Some((&f, rest)) = data.split_first() else {
        return (CodecCtx::default(), data);
    };
    let add_path = if f & 0x02 != 0 {
        BTreeSet::from([Family::IPV4_UNICAST, Family::IPV6_UNICAST])
    } else {
        BTreeSet::new()
    };
    let ctx = CodecCtx {
        four_octet_as: f & 0x01 != 0,
        add_path_rx: add_path.clone(),
        add_path_tx: add_path,
        extended_next_hop: f & 0x04 != 0,
        ebgp: f & 0x08 != 0,
        max_message_len: if f & 0x10 != 0 { 65535 } else { 4096 },
    };
    (ctx, rest)
}

fn run(target: &str, data: &[u8]) {
    match target {
        "message" => {
            let (ctx, b) = ctx_and_data(data);
            let _ = decode_message(b, &ctx);
        }
        "open" => {
            let _ = decode_open(data);
        }
        "capabilities" => {
            if let Ok(caps) = decode_capabilities(data) {
                let mut out = BytesMut::new();
                for c in &caps {
                    encode_capability(c, &mut out).unwrap();
                }
                assert_eq!(decode_capabilities(&out).unwrap(), caps);
            }
        }
        "update" => {
            let (ctx, b) = ctx_and_data(data);
            let _ = decode_update(b, &ctx);
        }
        "attributes" => {
            let (ctx, b) = ctx_and_data(data);
            let _ = decode_attributes(b, &ctx);
            let _ = parse_as_path(b, ctx.four_octet_as);
        }
        "nlri" => {
            let (ctx, b) = ctx_and_data(data);
            let ap = !ctx.add_path_rx.is_empty();
            let afi = if ctx.four_octet_as {
                Afi::IPV6
            } else {
                Afi::IPV4
            };
            let mut out = Vec::new();
            if decode_prefixes(b, afi, ap, &mut out).is_ok() {
                let mut wire = BytesMut::new();
                for n in &out {
                    put_nlri(&mut wire, n, ap);
                }
                let mut again = Vec::new();
                decode_prefixes(&wire, afi, ap, &mut again).unwrap();
                assert_eq!(again, out);
            }
        }
        "notification" => {
            if let Ok(n) = decode_notification(data) {
                let _ = n.shutdown_message();
                let _ = n.to_string();
            }
        }
        "framing" => {
            let (ctx, mut buf) = ctx_and_data(data);
            while let Ok(Some(len)) = frame_len(buf, ctx.max_message_len) {
                let (frame, rest) = buf.split_at(len);
                if decode_message(frame, &ctx).is_err() {
                    return;
                }
                buf = rest;
            }
        }
        "roundtrip" => {
            let (ctx, b) = ctx_and_data(data);
            let Ok(m1) = decode_message(b, &ctx) else {
                return;
            };
            let mut b1 = BytesMut::new();
            if encode_message(&m1, &ctx, &mut b1).is_err() {
                return;
            }
            let m2 = decode_message(&b1, &ctx).expect("our own encoding decodes");
            let mut b2 = BytesMut::new();
            encode_message(&m2, &ctx, &mut b2).unwrap();
            assert_eq!(b1, b2, "encoding is not stable");
            if let Message::Update(u) = &m2
                && u.issues.is_empty()
            {
                assert_eq!(&m2, &decode_message(&b2, &ctx).unwrap());
            }
        }
        other => panic!("unknown fuzz target {other}"),
    }
}

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn seed_corpus_replays() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds");
    let mut n = 0;
    for dir in files(&seeds).into_iter().filter(|p| p.is_dir()) {
        let target = dir.file_name().unwrap().to_string_lossy().to_string();
        for f in files(&dir) {
            run(&target, &std::fs::read(&f).unwrap());
            // Every seed also goes through the whole-message and round-trip checks.
            run("message", &std::fs::read(&f).unwrap());
            n += 1;
        }
    }
    assert!(
        n >= 40,
        "seed corpus missing: found {n} files under {}",
        seeds.display()
    );
}

#[test]
fn crash_inputs_replay() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    for f in files(&dir) {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let Some((target, _)) = name.split_once('-') else {
            continue;
        };
        run(target, &std::fs::read(&f).unwrap());
    }
}
